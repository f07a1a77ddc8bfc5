"""The one place that talks to MLflow: a run per stage, tagged so every number can be traced.

Default store: an sqlite file at the project root, addressed by an absolute URI so that
`dvc exp run --temp/--queue` copies (which run under `<root>/.dvc/tmp/exps/`) log to the same
store. `MLFLOW_TRACKING_URI` overrides it (a team server).

Parallel queue workers share that sqlite file. MLflow creates and migrates its tables the first
time a process opens a store; two processes doing it at once fail (`duplicate column name`), so
opening an sqlite store holds an exclusive lock file (`<db>.lock`). Logging afterwards is short
transactions that sqlite serialises.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

from fewshot.fileio import project_root


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class StageRun:
    """What a stage may record: params, metrics (optionally per step), files."""

    def __init__(self, mlflow_module: Any, run_id: str):
        self._mlflow = mlflow_module
        self.run_id = run_id

    def log_params(self, params: dict[str, Any]) -> None:
        self._mlflow.log_params({k: _short(v) for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        self._mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self._mlflow.log_artifacts(str(path), artifact_path=folder)
        elif path.exists():
            self._mlflow.log_artifact(str(path), artifact_path=folder)


@contextlib.contextmanager
def stage_run(stage: str, experiment: str, tags: dict[str, str] | None = None) -> Iterator[StageRun]:
    """Open one MLflow run for a pipeline stage; a failing stage leaves a FAILED run behind."""
    import mlflow  # imported here: 3 s that commands without tracking should not pay

    uri = tracking_uri()
    with _sqlite_lock(uri):
        mlflow.set_tracking_uri(uri)
        experiment_id = _experiment_id(mlflow, experiment)
    all_tags = {"stage": stage, "git_commit": git_commit()}
    if os.environ.get("DVC_EXP_NAME"):
        all_tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    all_tags.update(tags or {})
    with mlflow.start_run(experiment_id=experiment_id, run_name=stage, tags=all_tags) as run:
        yield StageRun(mlflow, run.info.run_id)


@contextlib.contextmanager
def _sqlite_lock(uri: str) -> Iterator[None]:
    """Hold `<db>.lock` exclusively while an sqlite store is opened (created or migrated)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _experiment_id(mlflow: Any, name: str) -> str:
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if tracking_uri().startswith("sqlite:"):
        location = (project_root() / "mlruns").as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except Exception:  # another worker created it between our look-up and create
        found = mlflow.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."
