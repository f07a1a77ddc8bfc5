"""Light-curve encoders: padded token tensors (N, L, 5) of `fewshot.modalities.light_curve` ->
features (N, D). No pretrained light-curve weights exist offline, so the networks are trained here
from scratch; the hand-crafted features are the no-training baseline.

- `lc_cnn` (default): the tokens binned onto a per-band time grid (mean normalised flux,
  linearly interpolated across empty bins, and an observed/empty mask per band and bin, plus the
  object's log brightness), then a 1-D CNN whose pooling averages only over bins with
  observations (masked).
- `lc_transformer`: a small transformer over the irregular tokens themselves: (time, flux,
  flux_err, log brightness) projected and added to a learned band embedding, Fourier features of
  time, padding masked out of attention and pooling.
- `lc_features`: fixed features from the `light-curve` package per band (amplitude, spread, shape
  moments, variability indices, trend, periodogram peak, ...) on peak-normalised flux, and the
  object's log brightness. Cached by embed like a pretrained backbone; a method standardises them
  on the training items (protonet `standardise`).

All are invariant to how much padding a batch carries.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from fewshot.models.backbones import Backbone, frozen, register

MAX_BANDS = 8  # = fewshot.modalities.light_curve.MAX_BANDS (the settings refuse more bands)


def _valid(tokens: torch.Tensor) -> torch.Tensor:
    return tokens[..., 1] >= 0


class TimeGrid(nn.Module):
    """Tokens (N, L, 5) -> (N, 2 * MAX_BANDS + 1, bins): per band the mean flux of each bin, linearly
    interpolated across empty bins between observations (held flat beyond the first and last), and
    whether the bin holds an observation; the object's log brightness as a constant channel."""

    def __init__(self, bins: int):
        super().__init__()
        self.bins = bins

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n, length, _ = tokens.shape
        valid = _valid(tokens)
        band = tokens[..., 1].clamp(min=0).long()
        slot = (tokens[..., 0].clamp(0, 1) * self.bins).long().clamp(max=self.bins - 1)
        index = (band * self.bins + slot) + torch.arange(n).unsqueeze(1) * MAX_BANDS * self.bins
        index = index[valid]
        flux = torch.zeros(n * MAX_BANDS * self.bins).index_add_(0, index, tokens[..., 2][valid])
        ones = torch.ones_like(index, dtype=torch.float)  # not ones(len(index)): a traced constant
        count = torch.zeros(n * MAX_BANDS * self.bins).index_add_(0, index, ones)
        mean = (flux / count.clamp(min=1)).view(n, MAX_BANDS, self.bins)
        seen = (count > 0).view(n, MAX_BANDS, self.bins)
        brightness = (tokens[..., 4] * valid).amax(1).view(n, 1, 1).expand(n, 1, self.bins)
        return torch.cat([interpolate(mean, seen), seen.float(), brightness], dim=1)


def interpolate(values: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Fill unseen positions of (..., bins) by linear interpolation between the nearest seen ones,
    holding the first/last seen value beyond them; rows with nothing seen stay 0.

    >>> interpolate(torch.tensor([[0.0, 2.0, 0.0, 0.0, 8.0, 0.0]]),
    ...             torch.tensor([[False, True, False, False, True, False]])).tolist()
    [[2.0, 2.0, 4.0, 6.0, 8.0, 8.0]]
    """
    bins = values.shape[-1]
    position = torch.arange(bins).expand_as(values)
    before = torch.where(seen, position, -1).cummax(-1).values
    after = torch.where(seen, position, bins).flip(-1).cummin(-1).values.flip(-1)
    has_before, has_after = before >= 0, after < bins
    low = values.gather(-1, before.clamp(min=0))
    high = values.gather(-1, after.clamp(max=bins - 1))
    weight = (position - before).float() / (after - before).clamp(min=1).float()
    between = low + (high - low) * weight
    filled = torch.where(has_before & has_after, between, torch.where(has_before, low, high))
    return torch.where(has_before | has_after, filled, torch.zeros_like(values))


class GridCNN(nn.Module):
    fixed_front = "grid"  # no parameters, same in train and eval mode: training computes it once

    def __init__(self, bins: int, width: int):
        super().__init__()
        self.grid = TimeGrid(bins)

        def block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv1d(c_in, c_out, 5, stride=stride, padding=2),
                                 nn.BatchNorm1d(c_out), nn.ReLU(inplace=True))

        self.net = nn.Sequential(block(2 * MAX_BANDS + 1, width, 1), block(width, width, 2),
                                 block(width, width, 2), block(width, width, 2))
        self.stride = 8

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        grid = self.grid(tokens)
        maps = self.net(grid)
        # Masked pooling: average over output positions whose receptive bins saw data; max over all.
        seen = grid[:, MAX_BANDS : 2 * MAX_BANDS].amax(1, keepdim=True)
        seen = nn.functional.max_pool1d(seen, self.stride, self.stride, ceil_mode=True)[..., : maps.shape[-1]]
        mean = (maps * seen).sum(-1) / seen.sum(-1).clamp(min=1)
        return torch.cat([mean, maps.amax(-1)], dim=1)


@register("lc_cnn", modality="light_curve", pretrained=False)
def lc_cnn(bins: int = 256, width: int = 64) -> Backbone:
    """A masked 1-D CNN over a per-band grid of `bins` time bins (span_days / bins days each)."""
    return Backbone(GridCNN(bins, width), out_dim=2 * width, pretrained=False,
                    modality="light_curve", inputs={"grid_bins": bins})


class TokenTransformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, frequencies: int):
        super().__init__()
        self.band = nn.Embedding(MAX_BANDS, width)
        self.values = nn.Linear(3 + 2 * frequencies, width)
        self.register_buffer("freq", 2.0 ** torch.arange(frequencies) * math.pi)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        valid = _valid(tokens)
        angle = tokens[..., :1] * self.freq
        values = torch.cat([tokens[..., 2:5], angle.sin(), angle.cos()], dim=-1)
        x = self.values(values) + self.band(tokens[..., 1].clamp(min=0).long())
        x = self.encoder(x, src_key_padding_mask=~valid)
        weights = valid.unsqueeze(-1).float()
        return (x * weights).sum(1) / weights.sum(1).clamp(min=1)


@register("lc_transformer", modality="light_curve", pretrained=False)
def lc_transformer(width: int = 64, layers: int = 2, heads: int = 4, frequencies: int = 8) -> Backbone:
    """A transformer over irregular (time, band, flux, flux_err) tokens."""
    return Backbone(TokenTransformer(width, layers, heads, frequencies), out_dim=width,
                    pretrained=False, modality="light_curve",
                    inputs={"width": width, "layers": layers, "frequencies": frequencies})


def _extractor():
    import light_curve as lc

    return lc.Extractor(
        lc.Amplitude(), lc.StandardDeviation(), lc.Skew(), lc.Kurtosis(), lc.BeyondNStd(1.0),
        lc.EtaE(), lc.StetsonK(), lc.LinearTrend(), lc.MaximumSlope(), lc.ReducedChi2(),
        lc.InterPercentileRange(0.25), lc.WeightedMean(), lc.Periodogram(peaks=1))


class LightCurveFeatures(nn.Module):
    """Tokens -> fixed features (N, MAX_BANDS * per band + 1); NaN (too few points) -> 0. Per band:
    the extractor's features, the time spent above half the band's peak flux, the point count."""

    def __init__(self):
        super().__init__()
        self.extractor = _extractor()
        self.names = list(self.extractor.names) + ["duration_above_half", "n_points"]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.stack([self._one(t) for t in tokens.numpy()])).float()

    def _one(self, tokens: np.ndarray) -> np.ndarray:
        out = np.zeros((MAX_BANDS, len(self.names)), dtype=np.float64)
        valid = tokens[tokens[:, 1] >= 0].astype(np.float64)
        for band in range(MAX_BANDS):
            rows = valid[valid[:, 1] == band]
            out[band, -1] = len(rows)
            if len(rows) < 4:
                continue
            t, flux, err = rows[:, 0], rows[:, 2], rows[:, 3]
            t = t + np.arange(len(t)) * 1e-9  # the extractors need strictly increasing times
            values = self.extractor(t, flux, err, fill_value=np.nan, sorted=True, check=False)
            out[band, : len(values)] = values
            above = t[flux >= 0.5 * flux.max()] if flux.max() > 0 else t[:1]
            out[band, -2] = above.max() - above.min()
        brightness = tokens[tokens[:, 1] >= 0, 4].max(initial=0.0)
        flat = np.nan_to_num(out.reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
        return np.append(flat, brightness)


@register("lc_features", modality="light_curve", pretrained=True)
def lc_features() -> Backbone:
    """Hand-crafted `light-curve` features (no training; cached by embed)."""
    module = LightCurveFeatures()
    return Backbone(frozen(module), out_dim=MAX_BANDS * len(module.names) + 1, pretrained=True,
                    modality="light_curve",
                    inputs={"features": module.names, "package": "light-curve==0.13.3"})
