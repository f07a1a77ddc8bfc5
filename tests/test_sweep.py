"""A 2 x 2 sweep through the real DVC queue with two parallel workers, logging to the default sqlite
MLflow store: one command, a table with all four experiments, no MLflow run lost or corrupted.

One trained model and one backbone, to keep it to a few minutes on 2 cores.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys

import mlflow
import pytest
import yaml

from tests.conftest import ROOT, git_dvc_project, project_env, sh, smoke_params

MODELS = ["protonet"]
GRID = {"n_way": [2, 3], "n_shot": [1, 2]}
GRID_DEPENDENT = {"episodes@images", "report"} | {
    f"{stage}@{model}" for stage in ("train", "evaluate") for model in MODELS}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    params = smoke_params()
    params["models"] = {name: params["models"][name] for name in MODELS}
    params["domains"] = {"images": params["domains"]["images"]}  # one domain is enough here
    params["domains"]["images"]["embed"]["backbones"] = ["efficientnet_lite0"]
    env = project_env()  # the default store: sqlite in the project root
    repo = tmp_path_factory.mktemp("sweep") / "repo"
    shutil.copytree(ROOT / "data/shapes", repo / "data/shapes")
    git_dvc_project(repo, params, env, {
        "pipelines/sweep_grid.yaml": yaml.safe_dump({"grid": GRID}, sort_keys=False),
        ".gitignore": "mlflow.db\nmlflow.db.lock\nmlruns/\nreports/sweeps/\n"})
    done = sh([sys.executable, "-m", "fewshot.tools.experiments", "sweep", "grid", "--jobs", "2"], repo, env)
    return {"repo": repo, "stdout": done.stdout}


def test_one_command_runs_four_experiments_and_tables_all_of_them(swept):
    rows = [line for line in swept["stdout"].splitlines() if line.startswith("| grid-")]
    assert len(rows) == 4 * len(MODELS)
    names = {row.split("|")[1].strip() for row in rows}
    assert names == {f"grid-n_way{w}-n_shot{s}" for w in GRID["n_way"] for s in GRID["n_shot"]}
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1] == cells[0].split("n_way")[1].split("-")[0]  # the table's n_way is the run's
        n_way = int(cells[1])
        assert float(cells[4].split(" ± ")[0]) > 1 / n_way + 0.2  # protonet learns at every point
    assert (swept["repo"] / "reports/sweeps/grid.md").read_text().count("| grid-") == len(rows)
    assert (swept["repo"] / "reports/sweeps/grid.png").stat().st_size > 5000


def test_two_workers_on_sqlite_lost_no_run_and_corrupted_nothing(swept):
    db = swept["repo"] / "mlflow.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("fewshot")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    by_experiment: dict[str, list] = {}
    for run in runs:
        assert run.info.status == "FINISHED", run.data.tags
        by_experiment.setdefault(run.data.tags.get("dvc_exp_name"), []).append(run)
    assert set(by_experiment) == {f"grid-n_way{w}-n_shot{s}" for w in GRID["n_way"]
                                  for s in GRID["n_shot"]}
    env = project_env()
    for name, group in by_experiment.items():
        # Stages DVC restored from its run cache (ingest, embed: the same in every experiment)
        # did not run; every stage that ran has exactly one run.
        log = sh(["dvc", "queue", "logs", name], swept["repo"], env).stdout
        ran = [line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage")]
        assert sorted(r.data.tags["stage"] for r in group) == sorted(set(ran) - {"check"}), name
        assert GRID_DEPENDENT <= set(ran), name
        evaluated = [r for r in group if r.data.tags["stage"] == "evaluate@protonet"][0]
        assert int(evaluated.data.params["n_way"]) == int(name.split("n_way")[1].split("-")[0])
        assert "accuracy" in evaluated.data.metrics


def test_plots_diff_draws_accuracy_vs_shots_across_the_experiments(swept):
    names = sorted(f"grid-n_way{w}-n_shot{s}" for w in GRID["n_way"] for s in GRID["n_shot"])
    env = project_env()
    shown = json.loads(sh(["dvc", "plots", "diff", "--json", *names], swept["repo"], env).stdout)
    values = shown["data"]["Accuracy vs shots"][0]["content"]["data"]["values"]
    points = {(v["rev"], v["n_way"], v["n_shot"]) for v in values if v["model"] == "protonet"}
    assert points == {(n, n.split("n_way")[1][0], n[-1]) for n in names}
    reliability = shown["data"]["Reliability diagram (after temperature scaling)"][0]
    assert set(reliability["revisions"]) == set(names)
