"""Several processes of one stage under `torchrun` (torch.distributed): the ranks of a world.

`torchrun --nproc_per_node N -m fewshot.stages.train MODEL` (or `embed DOMAIN`, or `srun` on
Slurm, one process per task) starts N copies of a stage; `world()` joins them: gloo between CPU
processes, nccl where CUDA is there (`FEWSHOT_DIST_BACKEND` overrides). Without torchrun's
environment (`WORLD_SIZE` unset or 1) it is one process and nothing changes: same code path, same
random streams, bit-identical results.

In a world of N: every rank holds the same parameters (broadcast from rank 0 at the start), samples
its own episodes (rank 0 the stream a single process would draw), and steps on the gradients
averaged over all ranks, so the parameters stay identical; buffers a rank's episodes update
(BatchNorm's running statistics) are rank 0's on every rank before each val check, as
DistributedDataParallel's `broadcast_buffers` does; val episodes are split between the ranks and
their accuracies gathered in episode order; only rank 0 writes files and records runs.
Collectives are called by every rank in the same order: the training loop does the same number of
steps on every rank.
"""

from __future__ import annotations

import datetime
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from fewshot.core.errors import UserError

BACKENDS = ("gloo", "nccl")
TIMEOUT = datetime.timedelta(minutes=30)  # a rank waiting longer for the others: a lost rank


@dataclass(frozen=True)
class World:
    """This process's place among the stage's processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    backend: str = ""  # gloo or nccl; "" for a single process
    device: str = "cpu"  # where collectives' buffers live: cuda:LOCAL_RANK under nccl

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rng(self, seed: int, *stream: int) -> np.random.Generator:
        """This rank's generator of a random stream: rank 0's is a single process's
        (`default_rng([seed, *stream])`, or `default_rng(seed)`), every other rank's its own."""
        key = [seed, *stream] if stream else seed
        return np.random.default_rng(key if self.rank == 0 else [seed, *stream, 1000 + self.rank])

    def seed_torch(self, seed: int) -> None:
        """Ranks other than 0 get their own torch stream (e.g. a siamese network's pair draws)."""
        if self.rank:
            torch.manual_seed(int(np.random.default_rng([seed, 2000 + self.rank]).integers(2**62)))

    def shard(self, n: int) -> np.ndarray:
        """Positions 0..n-1 that this rank handles: every `size`-th, from `rank` on."""
        return np.arange(self.rank, n, self.size)

    def gathered(self, value: Any) -> list:
        """Every rank's `value` (any picklable object), in rank order, on every rank."""
        if self.size == 1:
            return [value]
        out: list = [None] * self.size
        torch.distributed.all_gather_object(out, value)
        return out

    def in_order(self, shard: list | torch.Tensor, n: int) -> list | torch.Tensor:
        """The n items (a list, or a tensor's rows) of which this rank computed `shard` (its
        `shard(n)` positions), put back in order from every rank's part; on every rank."""
        if self.size == 1:
            return shard
        parts = self.gathered(shard)
        if isinstance(shard, torch.Tensor):
            rows = shard.new_empty((n, *shard.shape[1:]))
            for rank, part in enumerate(parts):
                rows[rank::self.size] = part
            return rows
        out: list = [None] * n
        for rank, part in enumerate(parts):
            for position, item in zip(range(rank, n, self.size), part, strict=True):
                out[position] = item
        return out

    def mean(self, value: float) -> float:
        """The mean of a number over the ranks (rank order: the same float on every rank)."""
        return float(np.mean(self.gathered(value))) if self.size > 1 else value

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace every gradient by its mean over the ranks: one all-reduce of one flat buffer.
        A parameter with no gradient on some rank counts as zero there; one with none on any rank
        keeps none (the optimiser skips it, as a single process would)."""
        if self.size == 1:
            return
        params = list(parameters)
        flat = torch.cat([torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                                     for p in params]),
                          torch.tensor([float(p.grad is not None) for p in params], dtype=params[0].dtype)])
        flat = flat.to(self.device)
        torch.distributed.all_reduce(flat)
        flat = flat.cpu()
        offset, had = 0, flat[-len(params):]
        for p, count in zip(params, had, strict=True):
            values = flat[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
            p.grad = (values / self.size).to(p.dtype) if count > 0 else None

    def broadcast(self, tensors: Iterable[torch.Tensor]) -> None:
        """Rank 0's values of `tensors` (parameters, buffers) on every rank."""
        if self.size == 1:
            return
        with torch.no_grad():
            for p in tensors:
                buffer = p.detach().to(self.device).contiguous()
                torch.distributed.broadcast(buffer, src=0)
                p.copy_(buffer.cpu())


SINGLE = World()


@contextmanager
def world() -> Iterator[World]:
    """The world torchrun (or srun through torchrun's variables) started this process in, joined
    for the block; a single process without them.

    Raises:
        UserError: FEWSHOT_DIST_BACKEND names no backend, or nccl without CUDA.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        yield SINGLE
        return
    backend = os.environ.get("FEWSHOT_DIST_BACKEND") or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in BACKENDS:
        raise UserError(f"FEWSHOT_DIST_BACKEND={backend!r}: expected one of {', '.join(BACKENDS)}")
    device = "cpu"
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise UserError("FEWSHOT_DIST_BACKEND=nccl needs CUDA, which this process does not see; "
                            "use gloo")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    torch.distributed.init_process_group(backend, timeout=TIMEOUT)
    try:
        yield World(torch.distributed.get_rank(), torch.distributed.get_world_size(), backend, device)
    finally:
        torch.distributed.destroy_process_group()
