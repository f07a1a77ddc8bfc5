"""The one place that talks to MLflow: a run per stage, tagged so every number can be traced, and
the packaged models of serving (`StageRun.log_model`, `load_logged_model`, `PythonModel`).

Default store: an sqlite file at the project root, addressed by an absolute URI so that
`dvc exp run --temp/--queue` copies (which run under `<root>/.dvc/tmp/exps/`) log to the same
store. `MLFLOW_TRACKING_URI` overrides it (a team server).

Parallel queue workers share that sqlite file. MLflow creates and migrates its tables the first
time a process opens a store; two processes doing it at once fail (`duplicate column name`), so
opening an sqlite store holds an exclusive lock file (`<db>.lock`). Logging afterwards is short
transactions that sqlite serialises.

Faults (see docs/failure-behaviour.md): a tracking server that does not answer fails the stage in
seconds with one line naming the URI, before any work; a stage stopped by SIGTERM or Ctrl-C ends its
run as KILLED, and so does its tracking process when the stage dies without a word (kill -9); a
run left RUNNING when both die (a lost machine) is marked KILLED by the next stage run on the same
host. A stage's run is written by the project's tracking daemon (`stage_run`,
fewshot.core.tracking_daemon), which keeps the store open from one stage to the next, so a stage
never imports MLflow; `mlflow_run` opens a run in this process. Names
of metrics and params are made acceptable to MLflow, whatever data they came from.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

from fewshot.core.dead_runs import close_dead_runs
from fewshot.core.errors import UserError, sigterm_as_interrupt
from fewshot.core.fileio import locked, project_root
from fewshot.core.run_tags import run_tags
from fewshot.core.tracking_server import raise_if_unreachable

# A server that dies mid-run: MLflow's default (7 retries with backoff, 120 s timeouts) would keep
# a stage silent for minutes; a user who wants that can still set these.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
_UNSAFE = re.compile(r"[^\w.\- ]")
DIGEST_CHARS = 36  # the length of MLflow's dataset digest column
_DUPLICATE_KEY = ("UNIQUE constraint failed", "UniqueViolation", "duplicate key value")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


class StageRun:
    """What a stage may record: params, metrics (optionally per step), files."""

    def __init__(self, mlflow_module: Any, run_id: str):
        self._mlflow = mlflow_module
        self.run_id = run_id

    def log_params(self, params: dict[str, Any]) -> None:
        self._mlflow.log_params({safe_name(k): _short(v) for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {safe_name(k): float(v) for k, v in metrics.items() if v is not None}
        self._mlflow.log_metrics(clean, step=step)

    def log_dict(self, data: dict, file: str) -> None:
        """A small JSON artifact: for tables keyed by names that come from the data."""
        self._mlflow.log_dict(data, file)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self._mlflow.log_artifacts(str(path), artifact_path=folder)
        elif path.exists():
            self._mlflow.log_artifact(str(path), artifact_path=folder)

    def log_inputs(self, datasets: list[dict[str, str]]) -> None:
        """Files the run read, as MLflow datasets (the UI's "Datasets used"): each a dict of `name`,
        `path`, `sha256` and `context` (training, validation, evaluation). MLflow keeps 36
        characters of a digest; the whole sha256 is the input's tag `sha256`."""
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.data.sources import LocalArtifactDatasetSource

        built = [MetaDataset(LocalArtifactDatasetSource(str(Path(d["path"]).absolute())),
                             name=d["name"], digest=d["sha256"][:DIGEST_CHARS]) for d in datasets]
        for attempt in range(3):
            try:
                self._mlflow.log_inputs(built, [d["context"] for d in datasets],
                                        [{"sha256": d["sha256"]} for d in datasets])
                return
            except Exception as err:
                # Two runs logging one new dataset at once (queue workers of a sweep): MLflow
                # looks it up, then inserts it, and the slower insert breaks the unique key.
                # Its transaction is rolled back; the next try finds the dataset and links it.
                if attempt == 2 or not any(word in str(err) for word in _DUPLICATE_KEY):
                    raise

    def set_tags(self, tags: dict[str, str]) -> None:
        self._mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_model(self, python_model: Any, artifacts: dict[str, str], requirements: list[str],
                  config: dict | None = None) -> str:
        """Log a packaged model with its files; return its `runs:/` URI. `python_model`: a
        `PythonModel`, or the path of a file that sets one (MLflow's models from code: nothing
        pickled); `config`: a JSON artifact `config` written here. The run's tag `logged_model`
        holds MLflow's own URI of it (`models:/m-...`), the one the model registry takes."""
        with tempfile.TemporaryDirectory() as folder:
            if config is not None:
                artifacts = artifacts | {"config": str(Path(folder) / "config.json")}
                Path(artifacts["config"]).write_text(json.dumps(config))
            info = self._mlflow.pyfunc.log_model(name="model", python_model=python_model,
                                                 artifacts=artifacts, pip_requirements=requirements)
        self._mlflow.set_tag("logged_model", info.model_uri)
        return f"runs:/{self.run_id}/model"

    def end(self, status: str) -> None:
        """End the run now with `status` (FINISHED, FAILED, KILLED)."""
        self._mlflow.end_run(status)


def load_logged_model(uri: str) -> Any:
    """The Python object of a model logged by `StageRun.log_model` (its logged code runs: trusted
    stores only)."""
    mlflow = open_store()  # a models:/ or runs:/ URI is resolved in the pipeline's store
    try:
        return mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except mlflow.exceptions.MlflowException as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UserError(f"no logged model at '{uri}' in {tracking_uri()} ({first}); expected "
                        "runs:/RUN_ID/model or models:/NAME@ALIAS (or /VERSION)") from None


def __getattr__(name: str) -> Any:
    """`PythonModel`, MLflow's base class of packaged models, imported only by who packages one."""
    if name == "PythonModel":
        import mlflow.pyfunc

        return mlflow.pyfunc.PythonModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class NotRecorded:
    """In place of a run where a process records nothing (a torchrun rank other than 0: rank 0
    records the stage): every call does nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


@contextlib.contextmanager
def stage_run(stage: str, experiment: str, tags: dict[str, str] | None = None,
              record: bool = True) -> Iterator[Any]:
    """One MLflow run for a pipeline stage, written by the project's tracking daemon while the
    stage works (`fewshot.core.tracking_worker`); complete when the block ends. A failing stage
    leaves a FAILED run behind, a stopped one (SIGTERM, Ctrl-C) a KILLED one. `record=False`: no
    run (`NotRecorded`)."""
    if not record:
        yield NotRecorded()
        return
    raise_if_unreachable(tracking_uri())
    from fewshot.core.tracking_worker import run_beside

    with sigterm_as_interrupt(), run_beside(stage, experiment, run_tags(stage, tags)) as run:
        yield run


@contextlib.contextmanager
def mlflow_run(stage: str, experiment: str, tags: dict[str, str] | None = None, *,
               tagged: bool = False, handle_signals: bool = True) -> Iterator[StageRun]:
    """One MLflow run opened in this process (a packaged model is logged only here), tagged by
    `run_tags` (`tagged`: `tags` are already complete, made by the stage the run belongs to)."""
    mlflow = open_store()
    with _sqlite_lock(tracking_uri()):
        experiment_id = _experiment_id(mlflow, experiment)
    close_dead_runs(mlflow.tracking.MlflowClient(), experiment_id)
    all_tags = dict(tags or {}) if tagged else run_tags(stage, tags)
    signals = sigterm_as_interrupt() if handle_signals else contextlib.nullcontext()
    with mlflow.start_run(experiment_id=experiment_id, run_name=stage, tags=all_tags) as run, signals:
        try:
            yield StageRun(mlflow, run.info.run_id)
        except KeyboardInterrupt:
            mlflow.end_run("KILLED")
            raise


def open_store() -> Any:
    """MLflow, pointed at `tracking_uri()` with its store opened (created or migrated, under the
    sqlite lock): ≈ 3.5 s of imports and SQLAlchemy set-up, paid once per process and URI."""
    uri = tracking_uri()
    raise_if_unreachable(uri)
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import mlflow  # imported here: 3 s that commands without tracking should not pay

    mlflow.set_tracking_uri(uri)
    if uri not in _OPENED:
        with _sqlite_lock(uri):
            mlflow.MlflowClient().search_experiments(max_results=1)
        _OPENED.add(uri)
    return mlflow


_OPENED: set[str] = set()


def safe_name(name: str) -> str:
    """`name` as MLflow accepts it for a metric or param: other characters become `_`.

    >>> safe_name("images_IMG (1)+#'"), safe_name("../x/y")
    ('images_IMG _1____', '_.._x_y')
    """
    clean = _UNSAFE.sub("_", str(name))
    return f"_{clean}" if clean.startswith(".") or not clean else clean


@contextlib.contextmanager
def _sqlite_lock(uri: str) -> Iterator[None]:
    """Hold `<db>.lock` exclusively while an sqlite store is opened (created or migrated)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with locked(database.with_name(database.name + ".lock")):
        yield


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
