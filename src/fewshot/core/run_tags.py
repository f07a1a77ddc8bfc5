"""What every MLflow run of a stage is tagged with, so that it can be traced and grouped: the
stage, the git commit, the host and pid (for `close_dead_runs`), the DVC experiment, and the
pipeline invocation it belongs to (`pipeline_run`)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_tags(stage: str, tags: dict[str, str] | None = None) -> dict[str, str]:
    """A run's tags: the stage, commit, host and pid of this process (for `close_dead_runs`), the
    DVC experiment it belongs to, and `tags`."""
    all_tags = {"stage": stage, "git_commit": git_commit(), "host": socket.gethostname(),
                "pid": str(os.getpid()), "pipeline_run": pipeline_run()}
    if os.environ.get("DVC_EXP_NAME"):
        all_tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    return all_tags | (tags or {})


def pipeline_run(proc: Path = Path("/proc")) -> str:
    """The invocation this stage is part of: `<host>:<pid>:<start>` of the nearest `dvc repro` or
    `dvc exp ...` process above this one (one per `dvc repro`, per `dvc exp run`, per queued
    experiment), else of this process (a stage run by hand). Every stage run of one `dvc repro`
    carries the same value: filter on `tags.pipeline_run = '...'` in MLflow."""
    pid, start = os.getpid(), ""
    try:
        current = pid
        while current > 1:
            stat = (proc / str(current) / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm)": state, ppid, ...
            words = (proc / str(current) / "cmdline").read_bytes().split(b"\0")
            names = [Path(w.decode(errors="replace")).name for w in words[:3]]
            if "dvc" in names and ({"repro", "exp"} & {w.decode(errors="replace") for w in words}):
                pid, start = current, fields[19]  # field 22 of stat: start time in clock ticks
                break
            current = int(fields[1])
        else:
            stat = (proc / str(pid) / "stat").read_text()
            start = stat[stat.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):  # no /proc (not Linux): this process alone
        pass
    return f"{socket.gethostname()}:{pid}:{start}"
