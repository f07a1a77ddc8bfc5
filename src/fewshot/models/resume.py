"""Resuming a killed training run where it stopped, and ending as an uninterrupted run would.

At every val check (`train.val_every`) episodic training writes what the rest of the run depends on:
the method's state, the optimiser's and the schedule's, the numpy sampler's and torch's random
generators (of every rank, under torchrun), and the best state so far. A run of the same model
with the same inputs (a rerun of `dvc repro` after `kill -9`, an OOM, a pre-empted node, Ctrl-C)
loads it and goes on from the next episode; on CPU the result is bit-identical to a run that was
never stopped (tests/models/test_resume.py). The file is removed when training ends.

"The same inputs" is a key over everything that decides the trajectory: the stage's params, the
training inputs and class texts (the tensors themselves), the val episodes and the package's source
code. Another key (other params in a sweep's parallel workers, edited code, new features) finds no
checkpoint and starts from zero; it never resumes a different run. Files live in
`<project>/.cache/resume/` (git-ignored, outside DVC's outputs, which DVC deletes before a stage
runs; shared by `dvc exp run --temp/--queue` copies) and are written atomically: a kill while
writing leaves the previous checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from fewshot.core.fileio import atomic_path, project_root

FORMAT = 2  # 2: random generators of every rank (`rng_by_rank`)


def source_digest() -> str:
    """SHA-256 of the `fewshot` package's Python source files (their paths and bytes)."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def tensor_digest(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Resume:
    """The checkpoint file of one training run, named by its key."""

    path: Path

    @classmethod
    def of(cls, model: str, identity: dict, folder: Path | None = None) -> Resume:
        key = hashlib.sha256(json.dumps([FORMAT, identity], sort_keys=True, default=str).encode())
        folder = folder or project_root() / ".cache" / "resume"
        return cls(Path(folder) / f"{model}-{key.hexdigest()[:20]}.pt")

    def load(self) -> dict | None:
        """The last checkpoint of this run, or None (none written, or unreadable: start afresh)."""
        if not self.path.is_file():
            return None
        try:
            return torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception:  # a file this version cannot read: training from zero is always correct
            return None

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def finish(self) -> None:
        """Remove the checkpoint, and any temp file a kill while writing left beside it."""
        self.path.unlink(missing_ok=True)
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
