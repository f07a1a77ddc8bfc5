"""A 2 x 2 sweep through the real DVC queue with two parallel workers, logging to the default sqlite
MLflow store: one command, a table with all four experiments, no MLflow run lost or corrupted.
Then two of its points swept again by two workers logging to a real `mlflow server` whose backend
store is PostgreSQL (team mode, issue 16): every stage run logged once, the same metrics.

One trained model and one backbone, to keep it to a few minutes on 2 cores.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from fewshot.tools import postgres
from tests.conftest import ROOT, free_port, git_dvc_project, http_server, project_env, sh, smoke_params

MODELS = ["protonet"]
GRID = {"n_way": [2, 3], "n_shot": [1, 2]}
PG_GRID = {"n_way": [2], "n_shot": [1, 2]}  # two of GRID's points: their metrics must match
GRID_DEPENDENT = {"episodes@images", "report"} | {
    f"{stage}@{model}" for stage in ("train", "evaluate") for model in MODELS}
pytestmark = pytest.mark.slow


def _sweep(repo: Path, env: dict, grid: dict) -> dict:
    """A new project at `repo` (one model, one backbone, one domain) and its `grid` swept by two
    queue workers through `fewshot.tools.experiments sweep`."""
    params = smoke_params()
    params["models"] = {name: params["models"][name] for name in MODELS}
    params["domains"] = {"images": params["domains"]["images"]}  # one domain is enough here
    params["domains"]["images"]["embed"]["backbones"] = ["efficientnet_lite0"]
    shutil.copytree(ROOT / "data/shapes", repo / "data/shapes")
    git_dvc_project(repo, params, env, {
        "pipelines/sweep_grid.yaml": yaml.safe_dump({"grid": grid}, sort_keys=False),
        ".gitignore": "mlflow.db\nmlflow.db.lock\nmlruns/\nreports/sweeps/\n"})
    done = sh([sys.executable, "-m", "fewshot.tools.experiments", "sweep", "grid", "--jobs", "2"], repo, env)
    return {"repo": repo, "stdout": done.stdout, "env": env}


def _names(grid: dict) -> set[str]:
    return {f"grid-n_way{w}-n_shot{s}" for w in grid["n_way"] for s in grid["n_shot"]}


def _runs_by_experiment(client: mlflow.MlflowClient) -> dict[str, list]:
    experiment = client.get_experiment_by_name("fewshot")
    by_experiment: dict[str, list] = {}
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        by_experiment.setdefault(run.data.tags.get("dvc_exp_name"), []).append(run)
    return by_experiment


def _assert_each_stage_that_ran_logged_once(repo: Path, env: dict, by_experiment: dict) -> None:
    """Stages DVC restored from its run cache (ingest, embed: the same in every experiment) did not
    run; every stage that ran (`dvc queue logs`) has exactly one FINISHED run."""
    for name, group in by_experiment.items():
        log = sh(["dvc", "queue", "logs", name], repo, env).stdout
        ran = [line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage")]
        assert sorted(r.data.tags["stage"] for r in group) == sorted(set(ran) - {"check"}), name
        assert GRID_DEPENDENT <= set(ran), name
        assert all(r.info.status == "FINISHED" for r in group), name
    # each experiment is one group of runs (its pipeline_run tag), distinct from the others'
    groups = {name: {r.data.tags["pipeline_run"] for r in group} for name, group in by_experiment.items()}
    assert all(len(tags) == 1 for tags in groups.values()), groups
    assert len(set.union(*groups.values())) == len(groups), groups


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    env = project_env()  # the default store: sqlite in the project root
    return _sweep(tmp_path_factory.mktemp("sweep") / "repo", env, GRID)


@pytest.fixture(scope="module")
def swept_on_postgres(tmp_path_factory):
    """PG_GRID swept in a project of its own, logging to `mlflow server` on 127.0.0.1 with a
    PostgreSQL backend store (a throwaway cluster) and the artifacts served by the server."""
    tmp = tmp_path_factory.mktemp("sweep_postgres")
    port = free_port()
    with postgres.temporary(free_port()) as store:
        cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "2", "--backend-store-uri", store,
               "--artifacts-destination", str(tmp / "artifacts")]
        with http_server(cmd, port, "/health", tmp / "server.log"):
            env = project_env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}")
            yield _sweep(tmp / "repo", env, PG_GRID) | {"store": store, "server": env["MLFLOW_TRACKING_URI"]}


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
    by_experiment = _runs_by_experiment(mlflow.MlflowClient(f"sqlite:///{db}"))
    assert set(by_experiment) == _names(GRID)
    _assert_each_stage_that_ran_logged_once(swept["repo"], swept["env"], by_experiment)
    for name, group in by_experiment.items():
        evaluated = [r for r in group if r.data.tags["stage"] == "evaluate@protonet"][0]
        assert int(evaluated.data.params["n_way"]) == int(name.split("n_way")[1].split("-")[0])
        assert "accuracy" in evaluated.data.metrics


TIMING = ("_ms", "seconds", "load_", "cpu_count", "threads", "repeats", "timed_")


def test_two_workers_on_a_postgresql_backed_server_log_each_run_once_with_sqlites_metrics(
        swept, swept_on_postgres):
    import psycopg

    on_server = _runs_by_experiment(mlflow.MlflowClient(swept_on_postgres["server"]))
    assert set(on_server) == _names(PG_GRID)
    _assert_each_stage_that_ran_logged_once(swept_on_postgres["repo"], swept_on_postgres["env"], on_server)
    # the runs are rows of PostgreSQL's `runs` table, not of some other store
    dsn = swept_on_postgres["store"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == \
            sum(len(group) for group in on_server.values())
    on_sqlite = _runs_by_experiment(mlflow.MlflowClient(f"sqlite:///{swept['repo'] / 'mlflow.db'}"))
    for name, group in on_server.items():
        for run in group:  # the stages of every point (which point ran ingest@ is a race)
            stage = run.data.tags["stage"]
            if stage not in GRID_DEPENDENT:
                continue
            twin = [r for r in on_sqlite[name] if r.data.tags["stage"] == stage]
            assert len(twin) == 1, (name, stage)
            same = lambda metrics: {k: v for k, v in metrics.items()  # noqa: E731
                                    if not any(t in k for t in TIMING)}
            assert same(run.data.metrics) == same(twin[0].data.metrics), (name, stage)
            assert run.data.params == twin[0].data.params, (name, stage)
        evaluated = [r for r in group if r.data.tags["stage"] == "evaluate@protonet"][0]
        n_way = int(name.split("n_way")[1].split("-")[0])
        assert evaluated.data.metrics["accuracy"] > 1 / n_way + 0.2  # a model that learned
        client = mlflow.MlflowClient(swept_on_postgres["server"])
        assert client.list_artifacts(evaluated.info.run_id), "artifacts go through the server"


def test_plots_diff_draws_accuracy_vs_shots_across_the_experiments(swept):
    names = sorted(f"grid-n_way{w}-n_shot{s}" for w in GRID["n_way"] for s in GRID["n_shot"])
    env = project_env()
    shown = json.loads(sh(["dvc", "plots", "diff", "--json", *names], swept["repo"], env).stdout)
    values = shown["data"]["Accuracy vs shots"][0]["content"]["data"]["values"]
    points = {(v["rev"], v["n_way"], v["n_shot"]) for v in values if v["model"] == "protonet"}
    assert points == {(n, n.split("n_way")[1][0], n[-1]) for n in names}
    reliability = shown["data"]["Reliability diagram (after temperature scaling)"][0]
    assert set(reliability["revisions"]) == set(names)
