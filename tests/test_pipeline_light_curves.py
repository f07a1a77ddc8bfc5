"""End to end on light curves: a generated time-series folder through the real `dvc repro` (ingest,
curate with the GX gate, episodes, embed of hand-crafted features, train and evaluate of every
method on the light-curve encoders), then fewshot-predict on the test episodes' own CSV files."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fewshot.tools.series import make_series_folder
from tests.conftest import ROOT, git_dvc_project, project_env, sh

LIGHT_CURVE_MODELS = {
    "protonet": {"method": "protonet"},
    "protonet_transformer": {"method": "protonet", "backbone": "lc_transformer", "episodes": 40},
    "siamese": {"method": "siamese", "options": {"loss": "contrastive", "margin": 1.0}},
    "zero_shot": {"method": "zero_shot", "train_n_way": 6, "options": {"text_projection": False}},
    "multimodal": {"method": "multimodal", "train_n_way": 6},
    "baseline_features": {"method": "protonet", "backbone": "lc_features", "head_dim": 0,
                          "episodes": 0, "options": {"standardise": True}},
}
CHANCE = 1 / 3


def light_curve_params(folder) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update({"n_way": 3, "n_query": 2, "models": LIGHT_CURVE_MODELS,
                   "model_defaults": {"backbone": "lc_cnn", "freeze": True, "head_dim": 32,
                                      "episodes": 120, "train_n_way": 6, "lr": 0.003, "options": {}}})
    params["data"] = {"source": "time_series_folder", "folder": str(folder)}
    params["modality"] = {"light_curve": {"bands": ["g", "r"], "span_days": 100, "max_points": 200,
                                          "min_points": 10}}
    params["curate"] |= {"min_groups": 6, "val_fraction": 0.25, "test_fraction": 0.25}
    params["episodes"] = {"val_episodes": 20, "test_episodes": 100}
    params["embed"] |= {"backbones": ["lc_features"],
                        "text_templates": ["{name}", "a light curve: {description}"]}
    params["train"] |= {"val_every": 20, "val_episodes": 20}
    params["evaluate"] |= {"latency_episodes": 3, "latency_warmup": 1}
    return params


@pytest.fixture(scope="module")
def lc_project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lc")
    folder = make_series_folder(tmp / "my_light_curves", n_classes=12, per_class=8)
    env = project_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db")
    repo = git_dvc_project(tmp / "repo", light_curve_params(folder), env)
    sh(["dvc", "repro"], repo, env)
    return {"repo": repo, "env": env, "folder": folder}


def metrics(repo, name: str) -> dict:
    return json.loads((repo / "reports" / "metrics" / f"{name}.json").read_text())


def test_curated_light_curves_pass_the_gate_and_keep_objects_apart(lc_project):
    repo = lc_project["repo"]
    items = pd.read_parquet(repo / "data" / "curated" / "items.parquet")
    assert len(items) == 96 and items["group"].nunique() == 8  # object_0..7, each a group
    assert json.loads((repo / "data" / "curated" / "modality.json").read_text())["modality"] == "light_curve"
    test = pd.read_parquet(repo / "data" / "episodes" / "test.parquet")
    for _, rows in test.groupby(["episode_id", "class_id"]):
        support = rows.loc[rows.role == "support", "item_id"].str.split("/").str[1]
        query = rows.loc[rows.role == "query", "item_id"].str.split("/").str[1]
        assert not set(support) & set(query)


@pytest.mark.parametrize("name", ["protonet", "protonet_transformer", "siamese", "multimodal",
                                  "baseline_features"])
def test_every_light_curve_model_beats_chance_on_unseen_classes(lc_project, name):
    result = metrics(lc_project["repo"], name)
    low = result["accuracy"] - result["accuracy_ci95"]
    assert low > CHANCE + 0.15, (name, result["accuracy"], result["accuracy_ci95"])


def test_trained_cnn_beats_its_untrained_start(lc_project):
    repo = lc_project["repo"]
    import torch

    saved = torch.load(repo / "data" / "models" / "protonet" / "model.pt", map_location="cpu")
    assert saved["info"]["best_step"] > 0
    assert saved["info"]["inference"]["modality"] == "light_curve"
    assert saved["info"]["inference"]["settings"]["bands"] == ["g", "r"]


def test_zero_shot_reads_class_texts_above_chance(lc_project):
    result = metrics(lc_project["repo"], "zero_shot")
    assert result["accuracy"] - result["accuracy_ci95"] > CHANCE, result["accuracy"]


def test_predict_on_light_curve_files_gives_what_evaluate_scored(lc_project):
    """fewshot-predict on three test episodes' own CSV files (support folder per class, query files)
    gives evaluate's per-episode accuracy and mean confidence (raw, T=1), for the trained CNN
    protonet and for the feature baseline."""
    repo, env, folder = lc_project["repo"], lc_project["env"], lc_project["folder"]
    classes = pd.read_parquet(repo / "data/curated/classes.parquet").set_index("class_id")
    table = pd.read_parquet(repo / "data/episodes/test.parquet")
    predict = str(Path(sys.executable).parent / "fewshot-predict")
    work = repo / "episode_files"
    try:
        for model in ("protonet", "baseline_features"):
            expected = pd.read_csv(repo / f"reports/plots/{model}/episodes.csv")
            for episode in range(3):
                rows = table[table["episode_id"] == episode]
                shutil.rmtree(work, ignore_errors=True)
                truth = {}
                for row in rows.itertuples():
                    original = folder / row.class_id / f"{row.item_id.split('/')[1]}.csv"
                    if row.role == "support":
                        (work / "support" / row.class_id).mkdir(parents=True, exist_ok=True)
                        shutil.copy(original, work / "support" / row.class_id / original.name)
                    else:
                        query = work / f"q{row.Index}.csv"
                        shutil.copy(original, query)
                        truth[str(query)] = classes.loc[row.class_id, "class_name"]
                sh([predict, "--model", model, "--support", str(work / "support"), "--temperature",
                    "1", "--json", str(work / "a.json"), *truth], repo, env)
                answers = json.loads((work / "a.json").read_text())["answers"]
                accuracy = sum(a["top_class"] == truth[a["query"]] for a in answers) / len(answers)
                confidence = sum(a["probability"] for a in answers) / len(answers)
                assert accuracy == pytest.approx(expected.loc[episode, "accuracy"], abs=1e-6), model
                assert confidence == pytest.approx(expected.loc[episode, "mean_confidence"], abs=1e-4)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_bad_light_curve_fails_naming_the_file_and_value(lc_project):
    """A non-finite flux in a user's CSV: ingest stops with one line naming the user's file, the
    row and the value; the raw and curated data of the previous run are left as they were."""
    repo, env, folder = lc_project["repo"], lc_project["env"], lc_project["folder"]
    bad = folder / "class_00" / "object_0.csv"
    original = bad.read_text()
    lines = original.splitlines()
    lines[3] = ",".join(lines[3].split(",")[:2] + ["nan"] + lines[3].split(",")[3:])
    bad.write_text("\n".join(lines) + "\n")
    try:
        done = sh([sys.executable, "-m", "fewshot.stages.ingest"], repo, env, check=False)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines()[-1] == (
            f"error: light curve '{bad}' row 4: flux 'nan' is not a finite number")
        assert (repo / "data/raw/light_curve/class_00/object_0.csv").read_text() == original
    finally:
        bad.write_text(original)
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout
