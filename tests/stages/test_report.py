"""The report stage's pieces: reliability panels that show how full each bin is, and warnings."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fewshot.core import paths
from fewshot.core.fileio import write_csv  # noqa: E402
from fewshot.evaluation.summary import (
    metrics,  # noqa: E402
    result_warnings,  # noqa: E402
)
from fewshot.stages.report import _markdown, _reliability_panel  # noqa: E402


def test_reliability_panel_shows_bin_counts_and_labels_sparse_bins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    probs = np.column_stack([np.r_[np.full(200, 0.95), [0.55, 0.55, 0.55]], np.zeros(203)])
    probs[:, 1] = 1 - probs[:, 0]
    labels = (rng.random(203) > 0.9).astype(int)
    for name in ("reliability.csv", "reliability_calibrated.csv"):
        write_csv(paths.PLOTS / "m" / name, metrics.reliability_bins(probs, labels, 10))
    fig, ax = plt.subplots()
    _reliability_panel(ax, "m", {"ece": 0.1, "ece_calibrated": 0.05, "temperature": 1.0})
    shares = sorted(round(bar.get_height() * 2, 3) for bar in ax.patches if bar.get_height() > 0)
    assert shares == [round(3 / 203, 3), round(200 / 203, 3)]  # a bar per non-empty bin, by share
    assert [t.get_text() for t in ax.texts] == ["n=3"]  # the 200-query bin is not labelled
    plt.close(fig)


def test_warned_numbers_are_listed_in_the_report():
    summary = {"accuracy": 0.177, "accuracy_ci95": 0.009, "temperature": 999.94}
    found = result_warnings(summary, n_way=5)
    assert len(found) == 2 and "below chance (0.200 for 5-way)" in found[0]
    assert "edge of its search range" in found[1]
    result = {"n_way": 5, "n_shot": 1, "n_query": 1, "episodes": 10, "episodes_hash": "ab" * 8,
              "device": "cpu", "backbone": "b", "frozen": True, "method": "conse", "trained": False,
              "train_seconds": 0.0, "accuracy": 0.177, "accuracy_ci95": 0.009, "ece": 0.02,
              "ece_calibrated": 0.023, "nll": 1.6, "nll_calibrated": 1.609, "brier": 0.8,
              "temperature": 999.94, "warnings": found,
              "latency": {f"{k}_{q}_ms": 1.0 for k in ("support", "query") for q in ("p50", "p95")}}
    text = _markdown({"baseline_conse": result}, {}, "Data: **image_folder** (folder `/x`)")
    assert "Data: **image_folder** (folder `/x`)" in text
    assert "## Warnings" in text and f"- **baseline_conse**: {found[1]}" in text
