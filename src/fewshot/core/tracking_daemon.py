"""The process that writes the stages' MLflow runs: started by the first stage, kept by the next.

Importing MLflow and opening its store costs ≈ 3.3 s of one core (MLflow's own imports, SQLAlchemy
mappers, the schema check) before a run is logged; a stage that waits for a cheap piece of work pays
it every time. So one process per project and store, `python -m fewshot.core.tracking_daemon
SOCKET`, opens the store once and serves every stage that connects to its Unix socket (the client
side is `fewshot.core.tracking_worker`): a session per stage, one thread each, one JSON line per
logging call, in order. Between `dvc repro`'s stages it stays; `FEWSHOT_TRACKING_IDLE_S` seconds
(default 20) after its last session ended it removes its socket and exits, so nothing is left
running once a pipeline is done. `FEWSHOT_TRACKING_IDLE_S=0` gives every stage a fresh process.

A session: the daemon greets with `{"hello": pid}`; the stage's first line opens its run
(`["start", {stage, experiment, tags}]`, tags complete: commit, host, the stage's pid); each later
line is a call (`log_metrics`, ...) until `["end", STATUS]`, answered `{"done": true}`. A connection
that closes without `end` (the stage died: kill -9) ends its run KILLED; one that closes before
`start` (the stage printed its help, or failed before its run) records nothing. Errors reach the
stage as `{"error": "one line"}`. The daemon runs in its own session (DVC's stop and Ctrl-C reach the
stage, which sends KILLED); its stderr, where MLflow prints, is `SOCKET.log`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

IDLE_ENV = "FEWSHOT_TRACKING_IDLE_S"
DEFAULT_IDLE_S = 20.0
FIRST_SESSION_WAIT_S = 60.0  # a daemon nobody connected to (its stage failed early) waits this long

_store_lock = threading.Lock()


def idle_seconds() -> float:
    value = os.environ.get(IDLE_ENV, "")
    try:
        return max(0.0, float(value)) if value else DEFAULT_IDLE_S
    except ValueError:
        raise SystemExit(f"error: {IDLE_ENV}={value!r}: expected a number of seconds") from None


def _open_store() -> None:
    from fewshot.core import tracking

    with _store_lock:  # one thread opens (creates, migrates) the store; the others wait for it
        tracking.open_store()


def _warm_up() -> None:
    with contextlib.suppress(Exception):
        _open_store()


def _serve(lines: Iterator[str], reply: Callable[[dict], None]) -> None:
    """Open the run named by the first line, then apply each call until `end` (or end of input)."""
    from fewshot.core import tracking

    first = next(lines, None)
    if first is None:
        return  # the stage ended before its run began (--help, bad input): nothing to record
    op, start = json.loads(first)
    if op != "start":
        raise ValueError(f"first message {op!r}, expected 'start'")
    _open_store()
    with tracking.mlflow_run(start["stage"], start["experiment"], start["tags"], tagged=True,
                             handle_signals=False) as run:
        reply({"run_id": run.run_id})
        for line in lines:
            op, *args = json.loads(line)
            if op == "end":
                run.end(args[0])
                return
            getattr(run, op)(*args)
        run.end("KILLED")  # the stage died without a word


class Daemon:
    """The accept loop: a thread per session, and the idle clock."""

    def __init__(self, listener: socket.socket, address: Path, idle_s: float):
        self.listener, self.address, self.idle_s = listener, address, idle_s
        self.active, self.served, self.since = 0, 0, time.monotonic()
        self.lock = threading.Lock()

    def run(self) -> None:
        self.listener.settimeout(0.2)
        while True:
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                if self._stop_if_idle():
                    return
                continue
            self._start_session(connection)

    def _start_session(self, connection: socket.socket) -> None:
        with self.lock:
            self.active += 1
        threading.Thread(target=self._session, args=(connection,), daemon=True).start()

    def _stop_if_idle(self) -> bool:
        with self.lock:
            wait = self.idle_s if self.served else max(self.idle_s, FIRST_SESSION_WAIT_S)
            if self.active or time.monotonic() - self.since < wait:
                return False
        with _address_lock(self.address):  # no new daemon binds while this one leaves
            self.listener.settimeout(0)
            try:  # a stage that connected meanwhile is served, not dropped
                connection, _ = self.listener.accept()
            except BlockingIOError:
                self.address.unlink(missing_ok=True)
                self.listener.close()
                return True
        self.listener.settimeout(0.2)
        self._start_session(connection)
        return False

    def _session(self, connection: socket.socket) -> None:
        connection.setblocking(True)
        reader, writer = connection.makefile("r"), connection.makefile("w")

        def reply(message: dict) -> None:
            writer.write(json.dumps(message) + "\n")
            writer.flush()

        try:
            with contextlib.suppress(OSError):  # the stage is gone: its run ends KILLED below
                reply({"hello": os.getpid()})
            _serve(iter(reader.readline, ""), reply)
            reply({"done": True})
        except Exception as err:  # any failure reaches the stage as one line
            with contextlib.suppress(OSError):
                reply({"error": f"{type(err).__name__}: {' '.join(str(err).split())[:500]}"})
        finally:
            with contextlib.suppress(OSError):
                connection.close()
            with self.lock:
                self.active -= 1
                self.served += 1
                self.since = time.monotonic()


def _address_lock(address: Path) -> contextlib.AbstractContextManager:
    """`SOCKET.lock`, held while a daemon binds or removes the socket: one daemon per address."""
    from fewshot.core.fileio import locked

    return locked(address.with_name(address.name + ".lock"))


def _listening(address: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(address))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def main() -> None:
    address = Path(sys.argv[1])
    idle_s = idle_seconds()
    with _address_lock(address):
        if _listening(address):
            return  # another stage's daemon won the start
        address.unlink(missing_ok=True)  # left by a daemon that was killed
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(address))
        listener.listen(64)
    # Open the store now, while the first stage still imports; a failure is each session's to report.
    threading.Thread(target=_warm_up, daemon=True).start()
    Daemon(listener, address, idle_s).run()


if __name__ == "__main__":
    main()
