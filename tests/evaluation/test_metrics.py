import numpy as np
import pytest

from fewshot.evaluation import metrics

PROBS = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7]])
LABELS = np.array([0, 1, 1, 1])


def test_accuracy_counts_argmax_hits():
    assert metrics.accuracy(PROBS, LABELS) == 0.75


def test_ece_golden_value_with_two_bins():
    # bin (0.5, 1]: all four rows, confidence mean 0.75, accuracy 0.75 -> gap 0
    assert metrics.expected_calibration_error(PROBS, LABELS, n_bins=2) == pytest.approx(0.0)
    # 10 bins: 0.9 ok, 0.8 wrong, 0.6 ok, 0.7 ok -> (|1-.9| + |0-.8| + |1-.6| + |1-.7|) / 4
    assert metrics.expected_calibration_error(PROBS, LABELS, n_bins=10) == pytest.approx(0.4)


def test_ece_is_zero_for_perfect_confident_predictions():
    probs = np.eye(3)[[0, 1, 2, 1]]
    assert metrics.expected_calibration_error(probs, np.array([0, 1, 2, 1])) == 0.0


def test_reliability_bins_cover_unit_interval_and_count_every_prediction():
    bins = metrics.reliability_bins(PROBS, LABELS, n_bins=15)
    assert len(bins) == 15 and bins["count"].sum() == 4
    assert bins["bin_lower"].iloc[0] == 0.0 and bins["bin_upper"].iloc[-1] == 1.0


def test_nll_and_brier_golden_values():
    assert metrics.negative_log_likelihood(PROBS, LABELS) == pytest.approx(
        -np.mean(np.log([0.9, 0.2, 0.6, 0.7])))
    assert metrics.brier_score(PROBS, LABELS) == pytest.approx(
        np.mean([0.02, 1.28, 0.32, 0.18]))


def test_ci95_uses_sample_std():
    mean, half = metrics.mean_ci95(np.array([0.2, 0.4, 0.6, 0.8]))
    assert mean == pytest.approx(0.5)
    assert half == pytest.approx(1.96 * np.std([0.2, 0.4, 0.6, 0.8], ddof=1) / 2)


def test_latency_summary_percentiles():
    summary = metrics.latency_summary(list(range(1, 101)))
    assert summary["p50_ms"] == pytest.approx(50.5) and summary["p95_ms"] == pytest.approx(95.05)


def test_temperature_scaling_fixes_overconfidence_and_keeps_accuracy():
    from fewshot.evaluation.calibration import fit_temperature, scaled_probs
    from fewshot.evaluation.summary import calibrated, summarise

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 2000)
    logits = rng.normal(size=(2000, 5))
    logits[np.arange(2000), labels] += 1.5          # about 60% right
    over = [{"logits": 10 * logits[i : i + 5], "labels": labels[i : i + 5]} for i in range(0, 2000, 5)]
    t = fit_temperature([r["logits"] for r in over], [r["labels"] for r in over])
    assert 5 < t < 20                                # undoes most of the factor 10
    raw, _, _ = summarise(over, 15)
    after, _ = calibrated(over, over, 15)
    assert after["ece_calibrated"] < 0.03 < raw["ece"]
    assert after["nll_calibrated"] < raw["nll"]
    assert np.array_equal(scaled_probs(logits, t).argmax(1), logits.argmax(1))
