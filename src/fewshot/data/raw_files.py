"""A domain's raw files in one archive: `data/<domain>/raw/files.zip`, beside manifest.csv.

One file instead of thousands, because DVC decides that a stage has nothing to do by stat-ing every
file of its dependencies and outputs: the 17,317 raw files of the default domains, walked by
ingest@ (its output) and curate@ (its dependency), were about 1 s of a 2.3 s no-op `dvc repro`.
The archive is stored, not compressed (PNGs do not shrink; members stay cheap to read one by one),
and byte-for-byte the same for the same files: members sorted by path, fixed time stamps and modes,
so ingesting the same data again gives the same DVC hash and reruns nothing downstream.
`unzip -l data/images/raw/files.zip` lists it; `extracted` gives the files back as a folder.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fewshot.core.errors import UserError

ARCHIVE = "files.zip"
_STAMP = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip member can hold: no build time leaks in


def pack(files: Path, paths: Iterable[str], raw: Path) -> Path:
    """Write `files`/<path> for every manifest path into `raw`/files.zip; return the archive."""
    archive = Path(raw) / ARCHIVE
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
        for rel in sorted(set(paths)):
            source = Path(files) / rel
            info = zipfile.ZipInfo(rel, _STAMP)
            info.external_attr = 0o644 << 16
            info.file_size = source.stat().st_size
            with source.open("rb") as src, out.open(info, "w",
                                                    force_zip64=info.file_size > zipfile.ZIP64_LIMIT) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    return archive


def archive_of(raw: Path) -> Path:
    """`raw`/files.zip, or one line saying how to make it."""
    archive = Path(raw) / ARCHIVE
    if not archive.is_file():
        domain = Path(raw).parent.name
        raise UserError(f"'{archive}' does not exist; run `dvc repro ingest@{domain}` (raw files "
                        "live in one archive since the stat cost of thousands of files)")
    return archive


@contextmanager
def extracted(raw: Path, paths: Iterable[str] | None = None) -> Iterator[Path]:
    """The raw files of `raw` (those at `paths`, or all) as a temp folder next to it, on the same
    disk, at their manifest paths; removed after the block."""
    with zipfile.ZipFile(archive_of(raw)) as archive, \
            tempfile.TemporaryDirectory(prefix=".raw-files.", dir=Path(raw).parent) as folder:
        archive.extractall(folder, None if paths is None else sorted(set(paths)))
        yield Path(folder)


def read(raw: Path, rel: str) -> bytes:
    """One raw file's bytes, by its manifest path."""
    with zipfile.ZipFile(archive_of(raw)) as archive:
        return archive.read(rel)
