"""Progress bars that stay readable in logs: frequent on a terminal, every 10 s otherwise; under
torchrun, rank 0's only (the ranks step together)."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, initial: int = 0) -> Iterable[T]:
    """`initial`: how many of `total` were done before (a resumed run counts on from there)."""
    interval = 0.2 if sys.stderr.isatty() else 10.0
    return tqdm(items, desc=desc, total=total, initial=initial, mininterval=interval,
                dynamic_ncols=True, disable=int(os.environ.get("RANK", "0")) > 0)
