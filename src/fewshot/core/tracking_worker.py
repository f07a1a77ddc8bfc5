"""A stage's side of its MLflow run: calls sent to the tracking daemon while the stage works.

`fewshot.core.tracking.stage_run` does not import MLflow: it connects to the project's tracking
daemon (`fewshot.core.tracking_daemon`, which keeps the store open between stages) and sends each
logging call as one JSON line. The daemon is found by a socket address made from what would make a
different process necessary: the Python executable, the project, the tracking URI, the `MLFLOW_*`
environment and the tracking code itself (an edited module gets a fresh daemon). When none answers
there, the stage starts one and goes on: calls wait in memory until it listens (≈ 3.3 s on the
other core, beside the stage's own imports), then flow as they are made. The stage's run is complete
when the stage ends: leaving `run_beside` sends the final status (FINISHED, FAILED, KILLED) and
waits for the daemon's `{"done": true}`. A daemon's error fails the stage at its next logging call,
or when its run ends. Files are read when the daemon reaches their `log_artifact`: a stage must not
delete or rewrite a file it logged before its run ends (none does).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from fewshot.core.errors import UserError

START_TIMEOUT_S = 120.0  # a daemon creating a new store on a loaded machine; then the stage fails
_SPAWNS = 3


def address() -> Path:
    """The socket of the daemon serving this process's project, store and environment."""
    from fewshot.core.fileio import project_root
    from fewshot.core.tracking import tracking_uri

    code = sorted(Path(__file__).parent.glob("*.py"))
    parts = [sys.executable, str(project_root()), tracking_uri(),
             *sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("MLFLOW_")),
             *(f"{p.name}:{p.stat().st_mtime_ns}" for p in code)]
    folder = Path(tempfile.gettempdir()) / f"fewshot-tracking-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:24]}.sock"


class Connector:
    """The way to this process's daemon: started at once if none listens, connected when needed."""

    def __init__(self):
        self.address = address()
        self.daemon: subprocess.Popen | None = None
        self.daemon_pid: int | None = None  # of the daemon that greeted us (maybe not ours)
        self.spawns = 0
        self.socket: socket.socket | None = None
        if not self.address.exists():
            self._spawn()

    def connect(self, wait: bool) -> socket.socket | None:
        """The session's socket once the daemon greeted it; None while it starts (`wait=False`)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.socket is None:
            self.socket = self._try()
            if self.socket is not None or not wait:
                break
            if self.spawns < _SPAWNS and (self.daemon is None or self.daemon.poll() is not None):
                self._spawn()  # none listens, or ours lost a start race to one that has since left
            if time.monotonic() > deadline or (self.spawns >= _SPAWNS and self.daemon.poll()):
                raise UserError(f"the MLflow tracking process did not start: {self._log_tail()}")
            time.sleep(0.05)
        return self.socket

    def _try(self) -> socket.socket | None:
        if not self.address.exists():
            return None
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(str(self.address))
            connection.settimeout(30)
            hello = connection.makefile("r").readline()
            connection.settimeout(None)
        except OSError:
            connection.close()
            return None
        if not hello.startswith('{"hello"'):
            connection.close()  # the daemon left between our connect and its accept
            return None
        self.daemon_pid = json.loads(hello)["hello"]
        return connection

    def _spawn(self) -> None:
        import fewshot
        from fewshot.core.fileio import project_root
        from fewshot.core.tracking import tracking_uri

        source = str(Path(fewshot.__file__).resolve().parents[1])
        env = {k: v for k, v in os.environ.items() if k != "DVC_EXP_NAME"}  # a run's tag, not the daemon's
        env |= {"MLFLOW_TRACKING_URI": tracking_uri(),
                "PYTHONPATH": os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))}
        with open(self.address.with_name(self.address.name + ".log"), "w") as log:
            self.daemon = subprocess.Popen(
                [sys.executable, "-m", "fewshot.core.tracking_daemon", str(self.address)],
                cwd=project_root(), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=log, start_new_session=True)
        self.spawns += 1

    def _log_tail(self) -> str:
        log = self.address.with_name(self.address.name + ".log")
        lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
        return lines[-1] if lines else f"no answer at {self.address} in {START_TIMEOUT_S:.0f} s"


class WorkerRun:
    """`StageRun`'s logging calls, sent to the daemon; `run_id` waits for the run to exist."""

    def __init__(self, stage: str, connector: Connector):
        self._stage, self._connector = stage, connector
        self._queue: list[str] = []
        self._writer = self._reader = None
        self._run_id: str | None = None
        self._error: str | None = None

    @property
    def daemon_pid(self) -> int:
        """The process that writes this run (once connected)."""
        self._flush(wait=True)
        return self._connector.daemon_pid

    @property
    def run_id(self) -> str:
        self._flush(wait=True)
        if self._run_id is None and self._read(self._reader.readline()).get("run_id") is None:
            raise self.failure()
        return self._run_id

    def log_params(self, params: dict[str, Any]) -> None:
        self._send("log_params", {k: str(v) for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._send("log_metrics", {k: float(v) for k, v in metrics.items() if v is not None}, step)

    def log_dict(self, data: dict, file: str) -> None:
        self._send("log_dict", data, file)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        self._send("log_artifact", str(Path(path).absolute()), folder)

    def log_inputs(self, datasets: list[dict[str, str]]) -> None:
        self._send("log_inputs", [{k: str(v) for k, v in d.items()} for d in datasets])

    def set_tags(self, tags: dict[str, str]) -> None:
        self._send("set_tags", {k: str(v) for k, v in tags.items()})

    def log_model(self, code: str | Path, artifacts: dict[str, str | Path], requirements: list[str],
                  config: dict | None = None) -> None:
        """`StageRun.log_model` of a model from code (the path of the file that sets it)."""
        self._send("log_model", str(Path(code).absolute()),
                   {k: str(Path(v).absolute()) for k, v in artifacts.items()}, list(requirements), config)

    def finish(self, status: str) -> None:
        """Send the run's final status, wait for the daemon; raise if it failed to record the run."""
        self._send("end", status, wait=True)
        try:
            replies = [self._read(line) for line in self._reader.read().splitlines()]
        except OSError:
            replies = []
        self._connector.socket.close()
        if {"done": True} not in replies:
            raise self.failure()

    def failure(self) -> UserError:
        return UserError(f"MLflow did not record the run of {self._stage}: "
                         f"{self._error or 'its tracking process died'}")

    def _send(self, op: str, *args: Any, wait: bool = False) -> None:
        self._queue.append(json.dumps([op, *args]) + "\n")
        self._flush(wait)

    def _flush(self, wait: bool) -> None:
        if self._writer is None:
            connection = self._connector.connect(wait)
            if connection is None:
                return  # still starting: the calls wait here
            self._reader, self._writer = connection.makefile("r"), connection.makefile("w")
        self._raise_if_worker_failed()
        try:
            self._writer.write("".join(self._queue))
            self._writer.flush()
        except OSError:  # the daemon stopped: finish() or run_id says why
            pass
        self._queue.clear()

    def _raise_if_worker_failed(self) -> None:
        """Fail at the first call after the daemon gave up (a refused login, an old schema), not
        only when the stage's work is done."""
        if self._error is not None:
            raise self.failure()
        if not select.select([self._reader], [], [], 0)[0]:
            return
        try:
            line = self._reader.readline()  # the daemon writes whole lines
        except OSError:  # it closed on calls it had stopped reading (after its error)
            line = ""
        if not line or "error" in self._read(line):
            raise self.failure()

    def _read(self, line: str) -> dict:
        reply = json.loads(line) if line.strip() else {}
        self._run_id = reply.get("run_id", self._run_id)
        self._error = reply.get("error", self._error)
        return reply


_prestarted: Connector | None = None


def prestart() -> None:
    """Find (or start) this process's daemon now, before the stage's imports; the next run uses it."""
    global _prestarted
    _prestarted = Connector()


@contextlib.contextmanager
def run_beside(stage: str, experiment: str, tags: dict[str, str]) -> Iterator[WorkerRun]:
    """One stage's run, written by the daemon; ended with the status the block ends with."""
    global _prestarted
    connector, _prestarted = _prestarted or Connector(), None
    run = WorkerRun(stage, connector)
    run._send("start", {"stage": stage, "experiment": experiment, "tags": tags})
    try:
        yield run
    except KeyboardInterrupt:
        with contextlib.suppress(UserError):  # the stop is what the exit status must say
            run.finish("KILLED")
        raise
    except BaseException:
        with contextlib.suppress(UserError):  # the stage's own error is the one to show
            run.finish("FAILED")
        raise
    run.finish("FINISHED")
