"""Light curves: one CSV per object (`time, band, flux, flux_err[, detected]`) -> the object's
series sorted in time, stored as float64 `(n, 4)` rows of (time, band index, flux, flux_err) with
time measured from the first observation in units of `span_days` (so in [0, 1]);
decoded into padded token tensors (N, max_points, 5), the input of the light-curve encoders
(`fewshot.models.backbones.light_curve`).

A token is one observation: (time since the first observation / span_days, band index, flux /
scale, flux_err / scale, log10 scale), where `scale` is the object's largest |flux| (peak
normalisation: shapes and colours compare across distances; the brightness itself stays in the
last channel). Padding tokens have band -1. `read` (fewshot-predict, serving) is `store` then
`decode`, so a user's file is prepared exactly as curation prepared the training data.

Curation refuses a file naming it and the bad value (`light_curve_csv`: unparseable CSV, missing
column, non-numeric or non-finite value, flux_err <= 0, a band outside `bands`); the Great
Expectations gate then checks every stored series (sorted in time, finite, positive errors, known
bands, at least `min_points` points) and names the object that fails.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fewshot.core.errors import UserError
from fewshot.modalities import MODALITIES, Modality
from fewshot.modalities.light_curve_csv import parse, read_table

if TYPE_CHECKING:
    import torch

MAX_BANDS = 8  # the encoders' band embedding size
TOKEN = ("time", "band", "flux", "flux_err", "log_scale")


@dataclass(frozen=True)
class LightCurveSettings:
    bands: list[str]   # band names, in order; a CSV's band column holds a name or its index
    span_days: float   # time axis of the encoders: observations later than this after the first are cut
    max_points: int    # longer series keep this many points, evenly spaced in time order
    min_points: int    # the curation gate refuses shorter series

    def __post_init__(self):
        if not 1 <= len(self.bands) <= MAX_BANDS or len(set(self.bands)) != len(self.bands):
            raise UserError(f"bands {self.bands} must be 1 to {MAX_BANDS} distinct names")
        if not self.span_days > 0:
            raise UserError(f"span_days {self.span_days} must be > 0")
        if not 2 <= self.min_points <= self.max_points:
            raise UserError(f"min_points {self.min_points} must be >= 2 and <= max_points "
                            f"{self.max_points}")


@MODALITIES.register("light_curve")
class LightCurveModality(Modality):
    name = "light_curve"
    Settings = LightCurveSettings
    suffixes = frozenset({".csv"})
    payload = "light_curve"
    varying_axes = (1,)  # time: a batch is padded to its longest series

    def store(self, path: Path, settings: LightCurveSettings) -> bytes:
        return to_bytes(prepare(read_table(path, settings), settings))

    def decode(self, stored: list[bytes]) -> torch.Tensor:
        import torch

        return torch.from_numpy(tokens([from_bytes(s) for s in stored], self._length(stored)))

    @staticmethod
    def _length(stored: list[bytes]) -> int:
        """Pad to the longest series of the batch (at most max_points by construction)."""
        return max((int(np.load(io.BytesIO(s)).shape[0]) for s in stored), default=1)

    def columns(self, stored: bytes | None) -> dict:
        if not isinstance(stored, bytes):
            return {"n_points": 0, "time_sorted": False, "finite": False, "min_flux_err": 0.0,
                    "min_band": -1, "max_band": -1}
        series = from_bytes(stored)
        if not len(series):
            return self.columns(None)
        return {"n_points": len(series),
                "time_sorted": bool(np.all(np.diff(series[:, 0]) >= 0)),
                "finite": bool(np.isfinite(series).all()),
                "min_flux_err": float(series[:, 3].min()),
                "min_band": int(series[:, 1].min()),
                "max_band": int(series[:, 1].max())}

    def expectations(self, gx, settings: LightCurveSettings) -> list:
        e = gx.expectations
        return [e.ExpectColumnValuesToBeBetween(column="n_points", min_value=settings.min_points,
                                                max_value=settings.max_points),
                e.ExpectColumnValuesToBeInSet(column="time_sorted", value_set=[True]),
                e.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]),
                e.ExpectColumnValuesToBeBetween(column="min_flux_err", min_value=0,
                                                strict_min=True),
                e.ExpectColumnValuesToBeBetween(column="min_band", min_value=0,
                                                max_value=len(settings.bands) - 1),
                e.ExpectColumnValuesToBeBetween(column="max_band", min_value=0,
                                                max_value=len(settings.bands) - 1)]

    def read(self, path: Path, settings: LightCurveSettings) -> np.ndarray:
        if not Path(path).is_file():
            raise UserError(f"light curve '{path}' does not exist or is not a file")
        return self.decode([self.store(path, settings)])[0].numpy()

    def blank(self, settings: LightCurveSettings) -> np.ndarray:
        """A flat series: zero flux in the first band, one point a day."""
        n = settings.min_points
        series = np.column_stack([np.arange(n, dtype=float), np.zeros(n), np.zeros(n), np.ones(n)])
        return tokens([prepare(series, settings)], n)

    def collate(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Pad to the longest (band -1): the encoders ignore padding."""
        out = np.zeros((len(inputs), max(len(x) for x in inputs), len(TOKEN)), dtype=np.float32)
        out[:, :, 1] = -1
        for i, x in enumerate(inputs):
            out[i, : len(x)] = x
        return out

    def verify(self, path: Path) -> None:
        """Refuse a file that is no readable light curve, naming the value (ingest; the bands are
        checked by curate, which knows `bands`)."""
        parse(path)


def prepare(series: np.ndarray, settings: LightCurveSettings) -> np.ndarray:
    """Sort in time (stable), measure time from the first observation in units of `span_days`
    and cut what lies beyond, keep at most `max_points` evenly spaced points.

    >>> s = LightCurveSettings(bands=["g"], span_days=10, max_points=3, min_points=2)
    >>> prepare(np.array([[5., 0, 1, 1], [0, 0, 2, 1], [20, 0, 3, 1], [1, 0, 4, 1], [2, 0, 5, 1]]), s)[:, 0]
    array([0. , 0.2, 0.5])
    """
    ordered = series[np.argsort(series[:, 0], kind="stable")]
    if len(ordered):
        ordered[:, 0] = (ordered[:, 0] - ordered[0, 0]) / settings.span_days
        ordered = ordered[ordered[:, 0] <= 1.0]
    if len(ordered) > settings.max_points:
        keep = np.unique(np.linspace(0, len(ordered) - 1, settings.max_points).round().astype(int))
        ordered = ordered[keep]
    return ordered


def to_bytes(series: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(series, dtype=np.float64), allow_pickle=False)
    return buffer.getvalue()


def from_bytes(stored: bytes) -> np.ndarray:
    return np.load(io.BytesIO(stored), allow_pickle=False)


def tokens(series: list[np.ndarray], length: int) -> np.ndarray:
    """Stored series -> float32 (N, length, 5) tokens (see the module docstring); band -1 pads.

    >>> t = tokens([np.array([[0.0, 1, -2, 0.5], [0.5, 0, 4, 1]])], 3)
    >>> t[0].astype(float).round(3).tolist()  # doctest: +NORMALIZE_WHITESPACE
    [[0.0, 1.0, -0.5, 0.125, 0.602], [0.5, 0.0, 1.0, 0.25, 0.602],
     [0.0, -1.0, 0.0, 0.0, 0.0]]
    """
    out = np.zeros((len(series), length, len(TOKEN)), dtype=np.float32)
    out[:, :, 1] = -1
    for i, s in enumerate(series):
        n = min(len(s), length)
        if n == 0:
            continue
        s = s[:n]
        scale = float(np.abs(s[:, 2]).max()) or 1.0
        out[i, :n, :2] = s[:, :2]
        out[i, :n, 2:4] = s[:, 2:4] / scale
        out[i, :n, 4] = np.log10(scale)
    return out
