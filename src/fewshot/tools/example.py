"""Export a worked inference example from the curated default data: a support folder drawn by one
design and query images drawn by the others (the cross-style task the benchmark measures).

Usage: python -m fewshot.tools.example OUT [--classes 5] [--split test] [--support-design google] [--seed 0]

Writes OUT/support/<class name>/<design>.png (one image per class), OUT/support/classes.csv
(class_name,description) and OUT/queries/<class name>__<design>.png (the class drawn by every
other design), from data/images/curated/items.parquet (run `dvc repro` first). Classes come from the
test split by default: classes no model was trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from fewshot.core import paths
from fewshot.core.errors import UserError, one_line_errors


def export(out: Path, n_classes: int = 5, split: str = "test", support_design: str = "google",
           seed: int = 0) -> tuple[Path, Path]:
    """Write the example; return (support folder, queries folder)."""
    curated = paths.Domain("images").items
    if not curated.is_file():
        raise UserError(f"no curated data at {curated}; run `dvc repro` first")
    items = pd.read_parquet(curated)
    items = items[items["split"] == split]
    if items.empty:
        raise UserError(f"split '{split}' has no items; expected train, val or test")
    designs = sorted(items["group"].unique())  # the emoji source's groups are its designs
    if support_design not in designs:
        raise UserError(f"design '{support_design}' is not in the data; designs: {', '.join(designs)}")
    drawn = items.groupby("class_id")["group"].apply(set)
    eligible = sorted(c for c, d in drawn.items() if support_design in d and len(d) > 1)
    if len(eligible) < n_classes:
        raise UserError(f"only {len(eligible)} classes of split '{split}' are drawn by "
                        f"'{support_design}' and another design; asked for {n_classes}")
    chosen = list(np.random.default_rng(seed).choice(eligible, n_classes, replace=False))
    support, queries = out / "support", out / "queries"
    queries.mkdir(parents=True, exist_ok=True)
    described = []
    for class_id in chosen:
        rows = items[items["class_id"] == class_id]
        name = _safe(rows["class_name"].iloc[0])
        described.append({"class_name": name, "description": rows["description"].iloc[0]})
        for row in rows.itertuples():
            if row.group == support_design:
                (support / name).mkdir(parents=True, exist_ok=True)
                (support / name / f"{row.group}.png").write_bytes(row.content)
            else:
                (queries / f"{name}__{row.group}.png").write_bytes(row.content)
    pd.DataFrame(described).to_csv(support / "classes.csv", index=False)
    return support, queries


def _safe(name: str) -> str:
    """A class name usable as a folder name (only '/' is not)."""
    return name.replace("/", "_").strip().lstrip(".") or "class"


@one_line_errors
def main() -> None:
    cli = argparse.ArgumentParser(prog="python -m fewshot.tools.example", description=__doc__.split("\n")[0])
    cli.add_argument("out", type=Path)
    cli.add_argument("--classes", type=int, default=5)
    cli.add_argument("--split", default="test")
    cli.add_argument("--support-design", default="google")
    cli.add_argument("--seed", type=int, default=0)
    args = cli.parse_args()
    support, queries = export(args.out, args.classes, args.split, args.support_design, args.seed)
    count = len(list(queries.glob("*.png")))
    print(f"wrote {support}/ ({args.classes} classes x 1 image) and {count} queries in {queries}/")


if __name__ == "__main__":
    main()
