"""Shared fixtures and helpers: tiny generated image-folder datasets, planted regressions."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# One torch (OpenMP) thread per test process and per stage a test runs (they inherit it): `make
# test` runs one xdist worker per core, and two-thread processes on two busy cores mostly wait on
# each other (make test 620 -> 502 s on the 2-core Intel Xeon, docs/results.md). The thread count
# moves trained weights by a float reduction's order, so scripts/ci_smoke.sh, whose run is
# compared --exact with the smoke run of these tests, uses the same.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402  (after the thread count: torch reads it when first imported)
import yaml  # noqa: E402

from fewshot.core import params as params_lib  # noqa: E402
from fewshot.core.typed import merged  # noqa: E402
from fewshot.tools.series import make_series_folder  # noqa: E402
from fewshot.tools.shapes import make_image_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def repo_params(models: dict | None = None, **sections) -> params_lib.Params:
    """The repository's params.yaml with `sections` merged in (and `models` replaced when given;
    an entry without `domain` gets the domain its backbone's kind of data has here: light_curves
    for `lc_*`, else images), typed and range-checked (not the cross-section rules:
    `fewshot.core.consistency.check`)."""
    raw = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), sections)
    if models is not None:
        raw["models"] = {name: ({"domain": _domain_of(entry)} | entry if isinstance(entry, dict)
                                else entry) for name, entry in models.items()}
    return params_lib.from_dict(raw)


def _domain_of(entry: dict) -> str:
    return "light_curves" if str(entry.get("backbone", "")).startswith("lc_") else "images"


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "my_data", n_classes=12, per_class=4)


def plant_drop(per_episode: list[float], points: float, queries: int) -> list[float]:
    """Turn `points` x all queries from correct to wrong, spread evenly over the episodes."""
    out = list(per_episode)
    to_flip = round(points * len(out) * queries)
    eligible = [i for i, acc in enumerate(out) if acc > 0]
    for i in eligible[:: max(1, len(eligible) // to_flip)][:to_flip]:
        out[i] = round(out[i] - 1 / queries, 6)
    assert to_flip == round((sum(per_episode) - sum(out)) * queries)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def http_server(cmd: list[str], port: int, health: str, log: Path, timeout_s: float = 120):
    """Run a real server in its own process group until `health` answers 200; stop the whole group."""
    with open(log, "w") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise AssertionError(f"server exited {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not healthy after {timeout_s} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=30)




def sh(args: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command; with `check`, fail the test with its output when it fails."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def predict_in(repo: Path, monkeypatch, *args: str | Path, tracking_uri: str | None = None) -> None:
    """`fewshot-predict ARGS` in `repo`, in this process: the command's own parser and code, without
    an interpreter start and the torch import per call (its entry point has tests of its own).
    MLflow: the project's own store, or `tracking_uri`."""
    from fewshot.inference import predict

    monkeypatch.chdir(repo)
    for key in ("MLFLOW_TRACKING_URI", "DVC_EXP_NAME"):
        monkeypatch.delenv(key, raising=False)
    if tracking_uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    status = predict.run(predict.parser().parse_args([str(a) for a in args]))
    assert status == 0, (args, status)


def smoke_params() -> dict:
    """This repository's params.yaml with the smoke preset merged in."""
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    return merged(base, yaml.safe_load((ROOT / "pipelines" / "smoke.yaml").read_text()))


def project_env(**extra: str) -> dict:
    """Environment for commands in a temporary project: this venv first, no inherited DVC
    experiment name or MLflow store (the project's own sqlite file unless `extra` names one)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1")
    for key in ("MLFLOW_TRACKING_URI", "DVC_EXP_NAME"):
        env.pop(key, None)
    return env | extra


def git_dvc_project(repo: Path, params: dict, env: dict, files: dict[str, str] | None = None) -> Path:
    """A committed git + DVC repository holding this repository's src/ and dvc.yaml, `params` and
    `files` (relative path -> text)."""
    repo.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "dvc.yaml", repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for name, text in (files or {}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "config", "user.name", "Test"],
                ["git", "config", "user.email", "test@example.com"], ["dvc", "init", "-q"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "test project"]):
        sh(cmd, repo, env)
    return repo


TEMPLATES = ["an emoji of {name}", "{name}", "{name}: {description}"]


def save_model(folder: Path, method: str = "protonet", backbone: str = "efficientnet_lite0",
               seed: int = 0, size: int = 32, templates: list[str] | None = None) -> Path:
    """An untrained but complete model artefact (as a train stage writes it) at folder/model.pt;
    an `lc_*` backbone makes a light-curve model with the repository's light-curve settings."""
    import torch

    from fewshot.models import checkpoint

    torch.manual_seed(seed)
    entry = repo_params({"m": {"method": method, "backbone": backbone, "head_dim": 16}}).models["m"]
    built, frozen = checkpoint.build(entry, on_features=True, text_dim=384)
    path = folder / "model.pt"
    folder.mkdir(parents=True, exist_ok=True)
    if _domain_of({"backbone": backbone}) == "light_curves":
        raw = yaml.safe_load((ROOT / "params.yaml").read_text())["domains"]["light_curves"]
        modality, settings = "light_curve", raw["settings"]
    else:
        modality, settings = "image", {"size": size}
    record = checkpoint.inference_record(modality, settings, backbone, templates or TEMPLATES)
    checkpoint.save(path, built, entry, 384, frozen, {"best_step": 1, "inference": record})
    return path


# The files whose tests share one expensive run: under pytest-xdist (`make test` runs `-n 2`) each
# group goes to one worker as a whole, so the run happens once per session; the other tests spread
# one by one over whichever worker is free. Largest group first (xdist's loadscope order).
SHARED_RUNS = {"tests/test_pipeline.py": "smoke run", "tests/test_pipeline_models.py": "smoke run",
               "tests/test_pipeline_light_curves.py": "smoke run", "tests/test_sweep.py": "sweep"}
_FIXTURE_OF_RUN = {"smoke run": "project", "sweep": "swept"}


def pytest_collection_modifyitems(items):
    """A test of a shared run outside its group's files would make a second worker repeat the run."""
    for item in items:
        for run, fixture in _FIXTURE_OF_RUN.items():
            if (fixture in getattr(item, "fixturenames", ())
                    and SHARED_RUNS.get(item.nodeid.split("::")[0]) != run):
                raise pytest.UsageError(f"{item.nodeid} uses the `{fixture}` fixture; add its file "
                                        f"to SHARED_RUNS in tests/conftest.py as {run!r}")


try:  # pytest-xdist's `loadgroup` marks do not reach its scheduler under pytest 9 (nodeids
    from xdist.scheduler import LoadScopeScheduling  # are no longer rewritable), so: a scheduler

    class SharedRunScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SHARED_RUNS.get(nodeid.split("::")[0], nodeid)

    @pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: `-p no:xdist` runs serially
    def pytest_xdist_make_scheduler(config, log):
        return SharedRunScheduling(config, log)
except ImportError:  # pytest without xdist: the tests run in one process
    pass


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    """The smoke pipeline, run once per test session by a real `dvc repro` in a temporary git
    repository (the repository's dvc.yaml and params.yaml with the smoke preset, on a generated
    image folder and a generated light-curve folder; MLflow in a temporary sqlite store). Tests
    that change it restore it."""
    tmp = tmp_path_factory.mktemp("e2e")
    folder = make_image_folder(tmp / "user_images", n_classes=24, per_class=4)
    series = make_series_folder(tmp / "user_light_curves", n_classes=24, per_class=8)
    params = smoke_params()
    params["domains"]["images"]["folder"] = str(folder)
    params["domains"]["light_curves"]["folder"] = str(series)
    env = project_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db")
    repo = git_dvc_project(tmp / "repo", params, env)
    first = sh(["dvc", "repro"], repo, env)
    if os.environ.get("FEWSHOT_SMOKE_SNAPSHOT"):  # .ci/run: compared with its own clean smoke run
        sh([sys.executable, "-m", "fewshot.gate", "snapshot", os.environ["FEWSHOT_SMOKE_SNAPSHOT"]],
           repo, env)
    return {"repo": repo, "env": env, "uri": env["MLFLOW_TRACKING_URI"], "first": first,
            "folder": folder, "series": series}


def runs_by_stage(uri: str) -> dict[str, list]:
    """The MLflow runs of experiment `fewshot`, by their `stage` tag."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("fewshot")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    grouped: dict[str, list] = {}
    for run in runs:
        grouped.setdefault(run.data.tags["stage"], []).append(run)
    return grouped
