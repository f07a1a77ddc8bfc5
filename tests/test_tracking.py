from pathlib import Path

import mlflow

from fewshot.fileio import project_root
from fewshot.tracking import stage_run, tracking_uri


def test_project_root_sees_through_dvc_experiment_copies():
    assert project_root(Path("/r/.dvc/tmp/exps/tmpx1/src")) == Path("/r")
    assert project_root(Path("/r/src")) == Path("/r/src")


def test_default_uri_is_absolute_sqlite_at_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"


def test_stage_run_records_params_metrics_and_tags(monkeypatch, tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-abc")
    monkeypatch.chdir(tmp_path)
    with stage_run("train@protonet", "unit", {"episodes_hash": "h1"}) as run:
        run.log_params({"train.lr": 0.1})
        run.log_metrics({"val_accuracy": 0.5}, step=3)
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("unit").experiment_id])
    assert len(runs) == 1
    tags = runs[0].data.tags
    assert tags["stage"] == "train@protonet" and tags["dvc_exp_name"] == "exp-abc"
    assert tags["episodes_hash"] == "h1" and len(tags["git_commit"]) > 0
    assert runs[0].data.params["train.lr"] == "0.1"
    assert runs[0].data.metrics["val_accuracy"] == 0.5
