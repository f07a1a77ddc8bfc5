"""A stage's MLflow run, written by a companion process while the stage works.

Importing MLflow and opening its store (SQLAlchemy mappers, the schema check) costs a stage ≈ 3.5 s
of one core before it logs anything; most stages need that time for their own imports and work
too. So `fewshot.core.tracking.stage_run` starts `python -m fewshot.core.tracking_worker` and goes
on: the worker opens the store and the run on the other core and records what the stage sends it,
one JSON line per call, in order, on its stdin. The stage's run is complete when the stage ends:
leaving `stage_run` sends the final status (FINISHED, FAILED, KILLED) and waits for the worker.

The worker ignores SIGINT and SIGTERM (Ctrl-C and DVC's stop reach the whole process group; the
stage turns them into the KILLED status it sends), and ends the run KILLED itself when its stdin
closes without a status: the stage died without a word (kill -9). Its stdout carries two lines
back: `{"run_id": ...}` once the run exists, then `{"done": true}` or `{"error": "one line"}`.
A worker's error fails the stage at its next logging call, or when its run ends. Files are read
when the worker reaches their `log_artifact`: a stage must not delete or rewrite a file it logged
before its run ends (none does).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

from fewshot.core.errors import UserError


class WorkerRun:
    """`StageRun`'s logging calls, sent to the worker; `run_id` waits for the run to exist."""

    def __init__(self, stage: str, process: subprocess.Popen):
        self._stage, self._process = stage, process
        self._run_id: str | None = None
        self._error: str | None = None

    @property
    def run_id(self) -> str:
        if self._run_id is None and self._read(self._process.stdout.readline()).get("run_id") is None:
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

    def finish(self, status: str) -> None:
        """Send the run's final status, wait for the worker; raise if it failed to record the run."""
        self._send("end", status)
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        replies = [self._read(line) for line in self._process.stdout.read().splitlines()]
        self._process.wait()
        if self._process.returncode != 0 or {"done": True} not in replies:
            raise self.failure()

    def failure(self) -> UserError:
        self._process.wait()
        return UserError(f"MLflow did not record the run of {self._stage}: "
                         f"{self._error or 'its tracking process died'}")

    def _send(self, op: str, *args: Any) -> None:
        self._raise_if_worker_failed()
        try:
            self._process.stdin.write(json.dumps([op, *args]) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:  # the worker stopped: finish() or run_id says why
            pass

    def _raise_if_worker_failed(self) -> None:
        """Fail at the first call after the worker gave up (a refused login, an old schema), not
        only when the stage's work is done."""
        if self._process.stdout.closed or not select.select([self._process.stdout], [], [], 0)[0]:
            return
        line = self._process.stdout.readline()  # the worker writes whole lines
        if not line or "error" in self._read(line):
            raise self.failure()

    def _read(self, line: str) -> dict:
        reply = json.loads(line) if line.strip() else {}
        self._run_id = reply.get("run_id", self._run_id)
        self._error = reply.get("error", self._error)
        return reply


_prestarted: subprocess.Popen | None = None


def prestart() -> None:
    """Start this process's worker now (it opens the store meanwhile); the next `run_beside` uses it."""
    global _prestarted
    _prestarted = _spawn()
    atexit.register(_discard_unused)


def _discard_unused() -> None:
    """At exit, end a worker no run took (the stage failed or printed its help before its run):
    its stdin closes, so it returns once the store is open — never killed while it may be creating
    or migrating a new store's tables (not atomic in MLflow)."""
    if _prestarted is not None:
        with contextlib.suppress(BrokenPipeError):
            _prestarted.stdin.close()
        try:
            _prestarted.wait(timeout=120)
        except subprocess.TimeoutExpired:
            _prestarted.kill()


def _spawn() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fewshot.core.tracking_worker"], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1)


@contextlib.contextmanager
def run_beside(stage: str, experiment: str, tags: dict[str, str], pid: int) -> Iterator[WorkerRun]:
    """Start the worker for one stage's run; end the run with the status the block ends with."""
    global _prestarted
    process, _prestarted = _prestarted or _spawn(), None
    run = WorkerRun(stage, process)
    run._send("start", {"stage": stage, "experiment": experiment, "tags": tags, "pid": pid})
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


def _serve(lines: Iterator[str], reply) -> None:
    """Open the run named by the first line, then apply each call until `end` (or end of input)."""
    from fewshot.core import tracking

    tracking.open_store()  # before the first line: the stage may still be importing
    first = next(lines, None)
    if first is None:
        return  # the stage ended before its run began (--help, bad input): nothing to record
    op, start = json.loads(first)
    if op != "start":
        raise ValueError(f"first message {op!r}, expected 'start'")
    with tracking.mlflow_run(start["stage"], start["experiment"], start["tags"], pid=start["pid"],
                             handle_signals=False) as run:
        reply({"run_id": run.run_id})
        for line in lines:
            op, *args = json.loads(line)
            if op == "end":
                run.end(args[0])
                return
            getattr(run, op)(*args)
        run.end("KILLED")  # the stage died without a word


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    # Replies go on the stdout the stage reads; whatever MLflow prints (a server's "View run"
    # links) goes to stderr instead, where the user sees it.
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(message: dict) -> None:
        print(json.dumps(message), file=channel, flush=True)

    try:
        _serve(iter(sys.stdin.readline, ""), reply)
    except Exception as err:  # any failure reaches the stage as one line
        reply({"error": f"{type(err).__name__}: {' '.join(str(err).split())[:500]}"})
        sys.exit(1)
    reply({"done": True})


if __name__ == "__main__":
    main()
