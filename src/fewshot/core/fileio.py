"""Atomic writes: every output appears whole or not at all (temp file in the same folder, then rename)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # pandas only for annotations: 0.5 s that MLflow's tracking process need not pay
    import pandas as pd


def _umask() -> int:
    """This process's umask: read from /proc on Linux (setting it to read it back, the only other
    way, changes it for every thread meanwhile)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_created(path: Path, mode: int) -> None:
    """The mode a plain open()/mkdir() would have given `path` (mkstemp/mkdtemp make 0600/0700:
    outputs others on a shared machine could not read)."""
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    _as_created(tmp_path, 0o666)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temp folder next to `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    _as_created(tmp, 0o777)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_EXPS_MARKER = (".dvc", "tmp", "exps")


def project_root(cwd: Path | None = None) -> Path:
    """The repository the pipeline belongs to, seen through any DVC experiment copy.

    >>> project_root(Path("/repo/.dvc/tmp/exps/tmpab12/sub"))
    PosixPath('/repo')
    >>> project_root(Path("/repo"))
    PosixPath('/repo')
    """
    cwd = (cwd or Path.cwd()).absolute()
    parts = cwd.parts
    for i in range(len(parts) - len(_EXPS_MARKER) + 1):
        if parts[i : i + len(_EXPS_MARKER)] == _EXPS_MARKER:
            return Path(*parts[:i])
    return cwd


def save_tensors(path: Path, tensors: dict, meta: dict) -> None:
    """Tensors and JSON metadata in one safetensors file, atomically.

    Unlike `torch.save`, which writes a random serialization id into every file, equal content gives
    equal bytes, so DVC sees an unchanged output and does not rerun the stages after it.
    """
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"meta": json.dumps(meta, sort_keys=True)})


def load_tensors(path: Path) -> tuple[dict, dict]:
    """(tensors, metadata) written by `save_tensors`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        meta = json.loads(handle.metadata()["meta"])
    return tensors, meta


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold `lock_file` (created if missing) exclusively: across processes and threads alike."""
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
