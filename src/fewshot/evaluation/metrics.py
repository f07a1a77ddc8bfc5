"""Evaluation metrics: pure functions of predictions, each with a worked example."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max is the label.

    >>> accuracy(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), np.array([0, 1, 1]))
    0.6666666666666666
    """
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of its normal 95% interval: 1.96 * std(ddof=1) / sqrt(n).

    >>> mean, half = mean_ci95(np.array([1.0, 0.0, 1.0, 0.0]))  # std = sqrt(1/3)
    >>> mean, round(half, 6)
    (0.5, 0.565803)
    """
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> pd.DataFrame:
    """Top-label confidence vs accuracy in `n_bins` equal-width bins over (0, 1].

    >>> reliability_bins(np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 0]), 2)[["count", "accuracy"]]
       count  accuracy
    0      0       NaN
    1      2       0.5
    """
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = index == b
        count = int(inside.sum())
        rows.append({
            "bin_lower": edges[b], "bin_upper": edges[b + 1], "count": count,
            "confidence": float(confidence[inside].mean()) if count else np.nan,
            "accuracy": float(correct[inside].mean()) if count else np.nan,
        })
    return pd.DataFrame(rows)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Sum over bins of (bin share) * |accuracy - confidence| (Guo et al., 2017).

    >>> round(expected_calibration_error(np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 0]), 2), 3)
    0.3
    """
    bins = reliability_bins(probs, labels, n_bins)
    filled = bins[bins["count"] > 0]
    gaps = (filled["accuracy"] - filled["confidence"]).abs()
    return float((filled["count"] * gaps).sum() / len(labels))


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean -log p(label), probabilities clipped at 1e-12.

    >>> round(negative_log_likelihood(np.array([[0.5, 0.5], [0.25, 0.75]]), np.array([0, 1])), 4)
    0.4904
    """
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, 1e-12, None)).mean())


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over rows of the squared distance between `probs` and the one-hot label.

    >>> brier_score(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([0, 0]))
    0.25
    """
    onehot = np.eye(probs.shape[1])[labels]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def latency_summary(milliseconds: list[float]) -> dict[str, float]:
    """Median, 95th percentile and mean of timings.

    >>> {k: round(v, 3) for k, v in latency_summary([1.0, 2.0, 3.0, 4.0]).items()}
    {'p50_ms': 2.5, 'p95_ms': 3.85, 'mean_ms': 2.5}
    """
    values = np.asarray(milliseconds, dtype=float)
    return {"p50_ms": float(np.percentile(values, 50)), "p95_ms": float(np.percentile(values, 95)),
            "mean_ms": float(values.mean())}


@dataclass(frozen=True)
class Paired:
    """Mean per-episode accuracy difference (current - baseline) and its CI."""

    mean: float
    low: float
    high: float
    n: int


def paired_difference(baseline: list[float], current: list[float], confidence: float) -> Paired:
    """Student-t CI of the mean paired difference.

    >>> d = paired_difference([1.0, 0.5, 1.0, 0.5], [1.0, 0.5, 1.0, 0.5], 0.95)
    >>> (d.mean, d.low, d.high)
    (0.0, 0.0, 0.0)
    """
    diffs = pd.Series(current, dtype=float) - pd.Series(baseline, dtype=float)
    n = len(diffs)
    mean = float(diffs.mean())
    if n < 2:
        return Paired(mean, -math.inf, math.inf, n)
    from scipy import stats  # 1-1.5 s of imports that only the gate's paired test needs

    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * diffs.std(ddof=1) / math.sqrt(n))
    return Paired(mean, mean - half, mean + half, n)
