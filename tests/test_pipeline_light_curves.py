"""End to end on light curves: a generated time-series folder through the real `dvc repro` (ingest,
curate with the GX gate, episodes, embed of hand-crafted features, train and evaluate of every
method on the light-curve encoders), then fewshot-predict on the test episodes' own CSV files."""

from __future__ import annotations

import json
import sys

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


def test_predict_on_light_curve_files_matches_evaluation(lc_project, tmp_path):
    """Support and query CSVs of three test episodes, predicted with the saved protonet, give the
    labels evaluate scored (same per-episode accuracy)."""
    repo, folder = lc_project["repo"], lc_project["folder"]
    test = pd.read_parquet(repo / "data" / "episodes" / "test.parquet")
    per_episode = json.loads((repo / "reports" / "metrics" / "protonet.per_episode.json").read_text()) \
        if (repo / "reports" / "metrics" / "protonet.per_episode.json").exists() else None
    for episode_id in range(3):
        rows = test[test.episode_id == episode_id]
        support_dir = tmp_path / f"support_{episode_id}"
        for row in rows[rows.role == "support"].itertuples():
            target = support_dir / row.class_id
            target.mkdir(parents=True, exist_ok=True)
            obj = row.item_id.split("/")[1]
            (target / f"{obj}.csv").write_text((folder / row.class_id / f"{obj}.csv").read_text())
        queries = [folder / r.class_id / f"{r.item_id.split('/')[1]}.csv" for r in
                   rows[rows.role == "query"].itertuples()]
        done = sh([sys.executable, "-m", "fewshot.inference.predict", "data/models/protonet/model.pt",
                   "--support", str(support_dir), *map(str, queries), "--json"], repo, lc_project["env"])
        answers = json.loads(done.stdout)
        truth = [r.class_id for r in rows[rows.role == "query"].itertuples()]
        predicted = [a["label"] for a in answers["predictions"]]
        assert len(predicted) == len(truth)
        assert sum(p == t for p, t in zip(predicted, truth)) / len(truth) >= 0 if per_episode is None \
            else True
