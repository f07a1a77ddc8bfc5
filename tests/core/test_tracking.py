"""MLflow tracking: the default store, tags, and parallel workers on one sqlite file."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from fewshot.core.errors import UserError
from fewshot.core.fileio import project_root
from fewshot.core.tracking import stage_run, tracking_uri
from tests.conftest import free_port


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


WORKER = """
import sys, time
from fewshot.core.tracking import stage_run
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))  # all workers open the store at once
with stage_run(f"worker{sys.argv[2]}", "parallel") as run:
    for step in range(20):
        run.log_metrics({"value": step}, step=step)
"""


def test_parallel_workers_creating_one_sqlite_store_lose_no_run(monkeypatch, tmp_path):
    """Four processes open a fresh sqlite store at the same instant (as queue workers do)."""
    db = tmp_path / "fresh.db"
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{db}")
    start = time.time() + 6  # after every interpreter has imported mlflow
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(start), str(i)], env=env,
                                cwd=tmp_path, stderr=subprocess.PIPE, text=True) for i in range(4)]
    errors = [w.communicate(timeout=120)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0], "\n".join(errors)[-3000:]
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("parallel").experiment_id])
    assert sorted(r.data.tags["stage"] for r in runs) == [f"worker{i}" for i in range(4)]
    for run in runs:
        assert len(client.get_metric_history(run.info.run_id, "value")) == 20
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_names_from_user_data_are_made_acceptable_to_mlflow(monkeypatch, tmp_path):
    """An image file `IMG (1).png` once became the metric name 'images_IMG (1)' and crashed ingest."""
    uri = f"sqlite:///{tmp_path}/m.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    names = ["IMG (1)", "a+b", "c#d", "e'f", "../up", "tab\there"]
    with stage_run("ingest", "unit") as run:
        run.log_metrics({f"images_{n}": i for i, n in enumerate(names)})
        run.log_params({f"data.{n}": n for n in names})
    client = mlflow.MlflowClient(uri)
    logged = client.search_runs([client.get_experiment_by_name("unit").experiment_id])[0].data
    assert sorted(logged.metrics.values()) == list(range(len(names)))
    assert sorted(logged.params.values()) == sorted(names)


def test_an_unreachable_tracking_server_fails_in_seconds_naming_the_uri(monkeypatch, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    with pytest.raises(UserError, match=f"MLflow tracking server {uri} .*does not answer"):
        with stage_run("episodes", "unit"):
            raise AssertionError("the stage's work must not start")
    assert time.monotonic() - started < 30  # was ~250 s of silent retries


SLEEPER = """
import time
from fewshot.core.errors import one_line_errors
from fewshot.core.tracking import stage_run

@one_line_errors  # as every stage's main
def main():
    with stage_run("train@slow", "stops") as run:
        print(run.run_id, run.daemon_pid, flush=True)
        time.sleep(120)

main()
"""


def _start_sleeper(env: dict, cwd: Path) -> tuple[subprocess.Popen, str, int]:
    sleeper = subprocess.Popen([sys.executable, "-c", SLEEPER], env=env, cwd=cwd, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    run_id, daemon_pid = sleeper.stdout.readline().split()
    return sleeper, run_id, int(daemon_pid)


def _status_within(client, run_id: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while (status := client.get_run(run_id).info.status) == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
    return status


def test_stopped_and_killed_stages_do_not_leave_runs_running(monkeypatch, tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
    client = mlflow.MlflowClient(uri)
    stopped, stopped_id, _ = _start_sleeper(env, tmp_path)
    os.killpg(stopped.pid, signal.SIGTERM)  # DVC, a scheduler or `kill`: the run ends KILLED
    _, err = stopped.communicate(timeout=60)
    assert stopped.returncode == 143 and "error: interrupted" in err
    assert client.get_run(stopped_id).info.status == "KILLED"
    killed, killed_id, _ = _start_sleeper(env, tmp_path)
    killed.kill()  # SIGKILL of the stage alone: the tracking daemon ends the run
    killed.wait(timeout=60)
    assert _status_within(client, killed_id, 60) == "KILLED"
    lost, lost_id, daemon_pid = _start_sleeper(env, tmp_path)
    os.kill(daemon_pid, signal.SIGKILL)  # the stage and the tracking daemon (a lost machine)
    os.killpg(lost.pid, signal.SIGKILL)
    lost.wait(timeout=60)
    assert _status_within(client, lost_id, 5) == "RUNNING"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    with stage_run("train@slow", "stops") as run:
        assert run.run_id  # the run exists: dead runs of this host were closed before it began
        assert client.get_run(lost_id).info.status == "KILLED"


def test_a_tracking_process_that_fails_fails_the_stage_in_one_line(monkeypatch, tmp_path):
    """The store cannot be opened (a file where its folder should be): the stage's error names it."""
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/not-a-folder/m.db")
    monkeypatch.chdir(tmp_path)
    work_done = False
    with pytest.raises(UserError, match="MLflow did not record the run of episodes: .*not-a-folder"):
        with stage_run("episodes", "unit") as run:
            for step in range(600):  # a minute of work: the failure must stop it, not wait for it
                run.log_metrics({"x": 1.0}, step=step)
                time.sleep(0.1)
            work_done = True
    assert not work_done


def _gone(pid: int) -> bool:
    """Exited (a zombie child of this process counts: it waits only for its parent to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return True


def test_one_daemon_writes_consecutive_stages_and_leaves_when_idle(monkeypatch, tmp_path):
    """Stages a second apart (`dvc repro`) share the process that opened the store; once idle for
    FEWSHOT_TRACKING_IDLE_S it removes its socket and exits, and the next stage starts a new one."""
    from fewshot.core.tracking_worker import address

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/m.db")
    monkeypatch.setenv("FEWSHOT_TRACKING_IDLE_S", "1")
    monkeypatch.chdir(tmp_path)
    pids = []
    for stage in ("ingest", "curate"):
        with stage_run(stage, "unit") as run:
            run.log_metrics({"x": 1.0})
            pids.append(run.daemon_pid)
    assert pids[0] == pids[1]
    socket_file = address()
    deadline = time.monotonic() + 30
    while not (_gone(pids[0]) and not socket_file.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pids[0]) and not socket_file.exists()
    with stage_run("episodes", "unit") as run:
        assert run.daemon_pid != pids[0]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/m.db")
    runs = client.search_runs([client.get_experiment_by_name("unit").experiment_id])
    assert sorted(r.data.tags["stage"] for r in runs) == ["curate", "episodes", "ingest"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["pid"] for r in runs} == {str(os.getpid())}  # the stage's, not the daemon's
