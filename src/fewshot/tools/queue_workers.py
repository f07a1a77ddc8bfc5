"""DVC queue workers that outlive their queue: found by the pid files DVC keeps, and stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

WORKERS = Path(".dvc/tmp/exps/celery")


def stop_idle_workers(grace_s: float = 20.0) -> None:
    """Once every task has ended, stop the queue workers that are still up. A worker asked to stop
    on an empty queue while its last task still ran (dvc-task's monitor) can stay up after that
    task succeeded, idle and deaf to shutdown; left alone it would outlive the sweep. `dvc queue
    stop` first, then SIGTERM, then SIGKILL, to the worker processes DVC recorded."""
    subprocess.run(["dvc", "queue", "stop"], capture_output=True)
    pids = set()
    for file in WORKERS.glob("dvc-exp-worker-*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pids.add(int(file.read_text().strip()))
    for signum in (None, signal.SIGTERM, signal.SIGKILL):
        for pid in (pids if signum else ()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        deadline = time.monotonic() + grace_s
        while (pids := {pid for pid in pids if _queue_worker(pid)}) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not pids:
            return


def _queue_worker(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) DVC queue worker: a stale pid file names no one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and b"queue-worker" in command
