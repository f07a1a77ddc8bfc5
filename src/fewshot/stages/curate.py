"""Stage `curate`: raw images -> validated items and class tables with class-disjoint splits.

Usage: python -m fewshot.stages.curate        (run by `dvc repro`, from the repository root)
Params: curate.image_size, min_designs, val_fraction, test_fraction, split_seed
Reads: data/raw/. Writes: data/curated/{items,classes}.parquet, reports/metrics/curate.json (gate
summary, counts, and a digest of the curated data that the report names),
reports/validation/curate.json (every expectation). Fails, writing no data, when a Great
Expectations check fails.
"""

from __future__ import annotations

import pandas as pd

from fewshot import curation, paths
from fewshot import params as params_lib
from fewshot.errors import UserError, one_line_errors
from fewshot.fileio import write_json, write_parquet
from fewshot.tracking import stage_run
from fewshot.validation import check_items

GATE_METRICS = paths.METRICS / "curate.json"
GATE_REPORT = paths.VALIDATION / "curate.json"


@one_line_errors
def main() -> None:
    params = params_lib.load()
    cfg = params.curate
    _raise_if_bad_fractions(cfg.val_fraction, cfg.test_fraction)
    manifest = pd.read_csv(paths.RAW / "manifest.csv", dtype=str, keep_default_na=False)
    with stage_run("curate", params.tracking.experiment) as run:
        run.log_params(params_lib.section(params, "curate"))
        items = curation.build_items(manifest, paths.RAW, cfg.image_size)
        n_before = items["class_id"].nunique()
        items = curation.keep_classes_with_designs(items, cfg.min_designs)
        dropped = n_before - items["class_id"].nunique()
        if dropped:
            print(f"curate: dropped {dropped} of {n_before} classes with fewer than "
                  f"curate.min_designs={cfg.min_designs} designs")
        if items.empty:
            raise UserError(f"no class has curate.min_designs={cfg.min_designs} designs; lower it")
        split_of = curation.assign_splits(
            items["class_id"].unique().tolist(), cfg.val_fraction, cfg.test_fraction, cfg.split_seed
        )
        items["split"] = items["class_id"].map(split_of)
        gate = check_items(items, min_items=cfg.min_designs, image_size=cfg.image_size)
        summary = gate.summary() | _counts(items)
        write_json(GATE_REPORT, summary)
        scalars = {k: v for k, v in summary.items() if k != "checks"}
        write_json(GATE_METRICS, scalars)
        run.log_metrics({k: v for k, v in scalars.items() if k != "data_sha256"})
        run.log_params({"data_sha256": scalars["data_sha256"]})
        run.log_artifact(GATE_REPORT)
        if not gate.success:
            raise UserError(f"data validation failed: {gate.failure_line()} (see {GATE_REPORT})")
        write_parquet(paths.ITEMS, items)
        write_parquet(paths.CLASSES, curation.class_table(items))
        print(f"curate: {len(items)} items, classes per split "
              f"{ {s: summary[f'classes_{s}'] for s in ('train', 'val', 'test')} } -> {paths.ITEMS}")


def _raise_if_bad_fractions(val: float, test: float) -> None:
    if val <= 0 or test <= 0 or val + test >= 1:
        raise UserError(f"curate.val_fraction={val} and test_fraction={test} must be > 0 "
                        "and sum to < 1 (the rest is train)")


def _counts(items: pd.DataFrame) -> dict:
    per_split = items.groupby("split")["class_id"].nunique()
    counts = {f"classes_{s}": int(per_split.get(s, 0)) for s in ("train", "val", "test")}
    return counts | {"items": len(items), "designs": int(items["design"].nunique()),
                     "data_sha256": curation.digest(items)}


if __name__ == "__main__":
    main()
