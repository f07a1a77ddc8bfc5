"""Shared fixtures and helpers: tiny generated image-folder datasets, planted regressions."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from fewshot.shapes import make_image_folder


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
