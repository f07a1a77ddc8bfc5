"""Runs left RUNNING by a stage that died with its tracking process (kill -9 of both, a lost
machine): the next stage run on the same host marks them KILLED (runs carry `host` and `pid` tags)."""

from __future__ import annotations

import os
import socket
from typing import Any


def close_dead_runs(client: Any, experiment_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs this host started from processes that no longer exist."""
    host = socket.gethostname()
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'",
                                 max_results=1000)
    closed = []
    for run in running:
        tags = run.data.tags
        if tags.get("host") == host and tags.get("pid", "").isdigit() and not _alive(int(tags["pid"])):
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    return closed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
