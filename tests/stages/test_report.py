"""The report stage's pieces: reliability panels that show how full each bin is, and warnings."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

from fewshot.core import paths
from fewshot.core.fileio import write_csv, write_json  # noqa: E402
from fewshot.evaluation.summary import (
    metrics,  # noqa: E402
    result_warnings,  # noqa: E402
)
from fewshot.stages import report  # noqa: E402
from fewshot.stages.report import _markdown  # noqa: E402
from fewshot.stages.report_figures import _reliability_panel, best_model  # noqa: E402
from tests.conftest import ROOT  # noqa: E402


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
    text = _markdown({"images": ("Data: **image_folder** (folder `/x`)", {"baseline_conse": result})},
                     {}, 5, 1)
    assert "## images" in text and "Data: **image_folder** (folder `/x`)" in text
    assert "### Warnings (images)" in text and f"- **baseline_conse**: {found[1]}" in text


def _fixture_model(folder: Path, name: str, per_episode: np.ndarray, confident: float, **fields) -> dict:
    """reports/metrics/<name>.json and reports/plots/<name>/*.csv of one fake evaluated model;
    accuracy and its CI are those of `per_episode`, as evaluate computes them."""
    rng = np.random.default_rng(len(name))
    accuracy, half = metrics.mean_ci95(per_episode)
    queries = 5 * len(per_episode)
    probs = np.full((queries, 5), (1 - confident) / 4)
    probs[:, 0] = confident
    labels = np.where(rng.random(queries) < accuracy, 0, 1)
    bins = metrics.reliability_bins(probs, labels, 15)
    result = {"model": name, "n_way": 5, "n_shot": 1, "n_query": 1, "episodes": len(per_episode),
              "episodes_hash": "0123456789abcdef" * 4, "device": "cpu (test)",
              "backbone": "efficientnet_lite0",
              "frozen": True, "method": "protonet", "trained": False, "train_seconds": 0.0,
              "accuracy": accuracy, "accuracy_ci95": half, "ece": 0.05, "ece_calibrated": 0.02,
              "nll": 1.1, "nll_calibrated": 1.0, "brier": 0.5, "temperature": 1.5, "warnings": [],
              "latency": {"support_p50_ms": 4.0, "support_p95_ms": 6.0, "query_p50_ms": 2.0,
                          "query_p95_ms": 3.0}} | fields
    write_json(folder / paths.METRICS / f"{name}.json", result)
    write_csv(folder / paths.PLOTS / name / "episodes.csv",
              pd.DataFrame({"episode_id": range(len(per_episode)), "accuracy": per_episode,
                            "mean_confidence": confident}))
    write_csv(folder / paths.PLOTS / name / "reliability.csv", bins)
    write_csv(folder / paths.PLOTS / name / "reliability_calibrated.csv", bins)
    classes = ["a", "b", "c", "d", "e"]
    write_csv(folder / paths.PLOTS / name / "confusion.csv",
              pd.DataFrame([(t, p, 40 if t == p else int(rng.integers(0, 10))) for t in classes
                            for p in classes], columns=["true_class", "predicted_class", "queries"]))
    return result


def test_report_stage_writes_table_figures_and_summary_from_metrics(tmp_path, monkeypatch):
    """The whole stage on three fixture models in two domains: a section per domain, each table row
    carries its model's numbers as the report formats them, rows keep the order of params `models`
    (the report does not re-rank: the weaker model, listed first, stays first), every figure of
    each domain (a confusion matrix included) is a real picture, summary.csv has one row per model
    with its domain and accuracy, on non-default data docs/results is left alone, and one finished
    MLflow run holds the report and its figures. (Most of the run time is MLflow creating its
    sqlite tables.)"""
    rng = np.random.default_rng(0)
    weak = _fixture_model(tmp_path, "weak_model", rng.choice([0.0, 0.2, 0.4, 0.6], 40), 0.5,
                          warnings=["a fixture warning"])
    strong = _fixture_model(tmp_path, "strong_model", rng.choice([0.6, 0.8, 1.0], 40), 0.9,
                            frozen=False, trained=True, train_seconds=90.4, temperature=1.25)
    curves = _fixture_model(tmp_path, "curves_model", rng.choice([0.4, 0.6], 40), 0.6,
                            backbone="lc_cnn", n_query=15)
    assert weak["accuracy"] + 0.3 < strong["accuracy"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["models"] = {"weak_model": {"domain": "images", "method": "protonet"},
                        "strong_model": {"domain": "images", "method": "protonet"},
                        "curves_model": {"domain": "light_curves", "method": "protonet",
                                         "backbone": "lc_cnn"}}
    params["domains"]["images"]["source"] = "image_folder"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_json(tmp_path / paths.Domain("images").curate_metrics,
               {"data_sha256": "feedfacecafebeef" * 4, "items": 96, "classes_test": 4})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/m.db")

    report.main()

    text = paths.REPORT.read_text()
    assert text.index("## images") < text.index("## light_curves")
    assert ("Data: **image_folder** (folder `data/shapes`); 96 curated items, 4 test classes; "
            "curated data sha256 `feedfacecafebeef`.") in text
    assert "Data: **plasticc** (PLAsTiCC training set" in text
    assert "5-way 1-shot, 15 query per class" in text
    assert "5-way 1-shot, 1 query per class; 40 test episodes (file hash `0123456789ab`)" in text
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ") and "_model" in line]
    assert [row[0] for row in rows] == ["| weak_model", "| strong_model", "| curves_model"]
    for row, r in zip(rows, [weak, strong, curves], strict=True):
        assert row[4] == f"{r['accuracy']:.4f} ± {r['accuracy_ci95']:.4f}"
        assert row[8] == f"{r['temperature']:.3f}"
    assert rows[0][2:4] == ["efficientnet_lite0", "no"]
    assert rows[1][2:4] == ["efficientnet_lite0 (fine-tuned)", "90 s"]
    assert "### Warnings (images)" in text and "- **weak_model**: a fixture warning" in text

    figures = [f"{kind}_{domain}" for domain in ("images", "light_curves")
               for kind in ("accuracy", "confusion", "reliability", "episode_accuracy", "latency")]
    for name in figures:
        png = paths.FIGURES / f"{name}.png"
        assert f"]({(paths.FIGURES / name).relative_to('reports').as_posix()}.png)" in text
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(png) as picture:
            pixels = np.asarray(picture.convert("L"))
        assert min(pixels.shape) > 150 and pixels.std() > 10, name  # drawn on, not a blank canvas
    assert best_model({"weak_model": weak, "strong_model": strong}) == "strong_model"

    summary = pd.read_csv(paths.SUMMARY)
    assert list(summary["model"]) == ["weak_model", "strong_model", "curves_model"]
    assert list(summary["domain"]) == ["images", "images", "light_curves"]
    assert list(summary["n_way"]) == [5, 5, 5] and list(summary["n_shot"]) == [1, 1, 1]
    assert summary["accuracy"].tolist() == pytest.approx(
        [weak["accuracy"], strong["accuracy"], curves["accuracy"]], rel=1e-5)
    assert not (tmp_path / "docs").exists()

    import mlflow  # already imported by the stage

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/m.db")
    experiment = client.get_experiment_by_name(params["tracking"]["experiment"])
    [run] = client.search_runs([experiment.experiment_id])
    assert run.data.tags["stage"] == "report" and run.info.status == "FINISHED"
    logged = sorted(Path(a.path).name for a in client.list_artifacts(run.info.run_id, "report"))
    assert logged == sorted([f"{name}.png" for name in figures] + ["report.md"])
