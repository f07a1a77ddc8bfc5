"""Resume after a kill: a training process killed with SIGKILL half-way, run again, goes on from its
last val check and ends bit-identical to a run never stopped (CPU). Tiny synthetic cached features
(tests/models/test_training.py's `synthetic_setup`), real processes, a real `kill -9`.

Run as `python -m tests.models.test_resume FOLDER METHOD RESULT` it is the training process itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from fewshot.models.methods import METHODS
from fewshot.models.methods.base import Parts
from fewshot.models.resume import Resume
from fewshot.models.training import TrainConfig, train
from tests.conftest import ROOT
from tests.models.test_training import N_WAY, NOISE, SIGNAL, TEXT_DIM, synthetic_setup

EPISODES, VAL_EVERY = 500, 20  # long enough (seconds) to be killed half-way, checked often


def train_once(folder: Path, method_name: str, result: Path) -> None:
    """One training process: what `train@` does around `training.train`, seeded the same way."""
    torch.set_num_threads(1)
    inputs, sampler, val_table = synthetic_setup(folder, val_episodes=20)
    torch.manual_seed(0)
    cls = METHODS.get(method_name)
    method = cls(Parts(nn.Identity(), SIGNAL + NOISE, head_dim=8, text_dim=TEXT_DIM), cls.Options())
    resume = Resume.of(method_name, {"test": True}, folder / "resume")
    cfg = TrainConfig(EPISODES, 3e-3, 1e-4, VAL_EVERY)
    best_state, best_acc, best_step = train(method, inputs, sampler, cfg, val_table, 0,
                                            log=lambda metrics, step: None, resume=resume)
    torch.save({"best_state": best_state, "best_acc": best_acc, "best_step": best_step,
                "last_state": method.state_dict()}, result)


def _run(folder: Path, method: str, result: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.models.test_resume", str(folder), method,
                             str(result)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, PYTHONHASHSEED="0"))


@pytest.mark.parametrize("method", ["protonet", "siamese"])  # siamese: torch's generator draws pairs
def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(tmp_path, method):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir()
    killed.mkdir()
    uninterrupted = _run(straight, method, tmp_path / "straight.pt")
    victim = _run(killed, method, tmp_path / "killed.pt")
    checkpoint = Resume.of(method, {"test": True}, killed / "resume").path
    deadline = time.monotonic() + 120
    while not checkpoint.exists():  # the first val check's checkpoint: then kill -9, mid-run
        assert victim.poll() is None and time.monotonic() < deadline, victim.communicate()[0]
        time.sleep(0.01)
    time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL and not (tmp_path / "killed.pt").exists()
    stopped_at = torch.load(checkpoint, weights_only=False)["step"]
    assert VAL_EVERY <= stopped_at < EPISODES - VAL_EVERY, stopped_at
    again = _run(killed, method, tmp_path / "killed.pt")
    log = again.communicate(timeout=300)[0]
    assert again.returncode == 0, log
    assert f"resuming training at episode {stopped_at + 1} of {EPISODES}" in log
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.communicate()[0]
    a, b = (torch.load(tmp_path / f"{n}.pt", weights_only=False) for n in ("straight", "killed"))
    assert (a["best_acc"], a["best_step"]) == (b["best_acc"], b["best_step"])
    assert a["best_step"] > 0 and a["best_acc"] > 1 / N_WAY + 0.2  # it learned: a real run
    for key in ("best_state", "last_state"):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert not checkpoint.exists() and not list((killed / "resume").iterdir())  # removed at the end


def test_another_key_or_an_unreadable_file_starts_from_zero(tmp_path):
    one = Resume.of("protonet", {"params": {"lr": 0.001}}, tmp_path)
    other = Resume.of("protonet", {"params": {"lr": 0.002}}, tmp_path)
    assert one.path != other.path and one.path.parent == tmp_path
    one.save({"step": 5})
    assert one.load() == {"step": 5} and other.load() is None
    one.path.write_bytes(b"half a file")
    assert one.load() is None
    one.finish()
    assert not one.path.exists()


if __name__ == "__main__":
    train_once(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
