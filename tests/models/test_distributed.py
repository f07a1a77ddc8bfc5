"""Training under torchrun: two real gloo processes (`torchrun --nproc_per_node 2`) on the tiny
synthetic cached features of tests/models/test_training.py. Same seed, same result run to run; the
ranks draw different episodes yet end with the same parameters (averaged gradients); the result's
val accuracy lies within the 95% CI of a single process's.

Run as `python -m tests.models.test_distributed FOLDER` under torchrun it is each rank's process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fewshot.evaluation.metrics import accuracy, mean_ci95
from fewshot.evaluation.scoring import score
from fewshot.models import distributed
from fewshot.models.methods import METHODS
from fewshot.models.methods.base import Parts
from fewshot.models.resume import Resume
from fewshot.models.training import TrainConfig, train
from tests.conftest import ROOT
from tests.models.test_training import N_WAY, NOISE, SIGNAL, TEXT_DIM, synthetic_setup

EPISODES, VAL_EVERY, VAL_EPISODES = 300, 50, 40
CFG = TrainConfig(EPISODES, 3e-3, 1e-4, VAL_EVERY)


def _protonet() -> nn.Module:
    """A protonet whose backbone is a BatchNorm layer: a trainable affine map, and running
    statistics each rank's episodes move (the ranks must still end as one model)."""
    torch.manual_seed(0)
    cls = METHODS.get("protonet")
    backbone = nn.BatchNorm1d(SIGNAL + NOISE)
    return cls(Parts(backbone, SIGNAL + NOISE, head_dim=8, text_dim=TEXT_DIM), cls.Options())


def train_rank(folder: Path) -> None:
    """One rank: what `train@` does around `training.train`, seeded the same way, plus a record of
    the first episode this rank drew; writes folder/rank<R>.pt."""
    with distributed.world() as world:
        inputs, sampler, val_table = synthetic_setup(folder / f"data{world.rank}", VAL_EPISODES)
        method, drawn, sample = _protonet(), [], sampler.sample  # the episodes this rank drew
        sampler.sample = lambda rng: drawn.append(rows := sample(rng)) or rows
        resume = Resume.of("protonet", {"test": world.size}, folder / "resume")
        best_state, best_acc, best_step = train(method, inputs, sampler, CFG, val_table, 0,
                                                log=lambda metrics, step: None, resume=resume,
                                                world=world)
        torch.save({"best_state": best_state, "best_acc": best_acc, "best_step": best_step,
                    "last_state": method.state_dict(), "first_episode": drawn[0],
                    "episodes": len(drawn), "world": world}, folder / f"rank{world.rank}.pt")


def _start(folder: Path) -> subprocess.Popen:
    folder.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node", "2", "-m", "tests.models.test_distributed", str(folder)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True,
                            env=dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1"))


def _torchrun(folder: Path) -> list[dict]:
    job = _start(folder)
    log = job.communicate(timeout=300)[0]
    assert job.returncode == 0, log
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) | {"log": log} for r in (0, 1)]


def _children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[dict]:
    """One 2-rank job, its ranks' results."""
    return _torchrun(tmp_path_factory.mktemp("torchrun") / "first")


def test_two_gloo_ranks_train_one_model_reproducibly_and_as_well_as_one_process(tmp_path, uninterrupted):
    first = ranks = uninterrupted
    again = _torchrun(tmp_path / "again")
    assert [r["world"] for r in ranks] == [distributed.World(0, 2, "gloo"), distributed.World(1, 2, "gloo")]
    assert all(r["episodes"] == EPISODES for r in ranks)
    assert not ranks[0]["first_episode"] == ranks[1]["first_episode"]  # each rank its own episodes
    for key in ("best_state", "last_state"):  # averaged gradients: the ranks stay one model
        assert _equal(ranks[0][key], ranks[1][key]), key
        assert _equal(first[0][key], again[0][key]), key  # same seed, same result
    assert (first[0]["best_acc"], first[0]["best_step"]) == (again[0]["best_acc"], again[0]["best_step"])
    assert ranks[0]["best_acc"] == ranks[1]["best_acc"]
    assert not list((tmp_path / "again" / "resume").iterdir())  # the checkpoint removed at the end

    inputs, sampler, val_table = synthetic_setup(tmp_path / "single", VAL_EPISODES)
    single = _protonet()
    single_best, single_acc, _ = train(single, inputs, sampler, CFG, val_table, 0,
                                       log=lambda metrics, step: None)
    assert not _equal(single_best, first[0]["best_state"])  # rank 1's episodes took part
    single.load_state_dict(single_best)
    mean, half = mean_ci95(np.array([accuracy(r["logits"], r["labels"])
                                     for r in score(single, inputs, val_table)]))
    assert mean == pytest.approx(single_acc)
    assert single_acc > 1 / N_WAY + 0.3  # the single process learned (observed: 0.75)
    assert abs(first[0]["best_acc"] - single_acc) <= half, (first[0]["best_acc"], single_acc, half)


def test_a_killed_two_rank_job_resumes_and_ends_as_an_uninterrupted_one(tmp_path, uninterrupted):
    """`kill -9` of torchrun and both ranks after the first checkpoint; the rerun goes on from it with each
    rank's own random generators and ends bit-identical to a job never stopped."""
    killed = tmp_path / "killed"
    victim, checkpoint = _start(killed), Resume.of("protonet", {"test": 2}, killed / "resume").path
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        assert victim.poll() is None and time.monotonic() < deadline, victim.communicate()[0]
        time.sleep(0.01)
    ranks = _children(victim.pid)  # torchrun starts each rank in a session of its own
    assert len(ranks) == 2, ranks
    for pid in (victim.pid, *ranks):  # the whole job at once, as a scheduler's kill does
        os.kill(pid, signal.SIGKILL)
    victim.wait()
    stopped_at = torch.load(checkpoint, weights_only=False)["step"]
    assert stopped_at < EPISODES and not (killed / "rank0.pt").exists()
    resumed = _torchrun(killed)
    assert resumed[0]["log"].count(f"resuming training at episode {stopped_at + 1} of {EPISODES}") == 2
    for key in ("best_state", "last_state"):
        assert _equal(uninterrupted[0][key], resumed[0][key]), key
        assert _equal(resumed[0][key], resumed[1][key]), key
    assert uninterrupted[0]["best_acc"] == resumed[0]["best_acc"]
    assert not checkpoint.exists()


def test_a_single_process_is_rank_0_of_1_and_its_streams_are_unchanged(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.world() as world:
        assert world is distributed.SINGLE and world.is_main
    assert world.rng(7).integers(1 << 30) == np.random.default_rng(7).integers(1 << 30)
    assert world.rng(7, 1).integers(1 << 30) == np.random.default_rng([7, 1]).integers(1 << 30)
    other = distributed.World(1, 2, "gloo")
    assert other.rng(7).integers(1 << 30) != world.rng(7).integers(1 << 30)
    assert list(other.shard(5)) == [1, 3] and list(world.shard(3)) == [0, 1, 2]


def test_an_unknown_backend_is_one_line(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("FEWSHOT_DIST_BACKEND", "mpi2")
    expected = "FEWSHOT_DIST_BACKEND='mpi2': expected one of gloo, nccl"
    with pytest.raises(distributed.UserError, match=expected):
        with distributed.world():
            pass


if __name__ == "__main__":
    torch.set_num_threads(1)
    train_rank(Path(sys.argv[1]))
