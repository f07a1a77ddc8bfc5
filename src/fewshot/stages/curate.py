"""Stage `curate@<domain>`: raw files -> validated items and class tables with class-disjoint
test classes.

Usage: python -m fewshot.stages.curate DOMAIN  (run by `dvc repro` as curate@DOMAIN)
Params: domains.DOMAIN.curate (min_groups, val_fraction, test_fraction, test_classes, val_split,
split_seed), domains.DOMAIN.settings (of the source's kind of data)
Reads: data/<domain>/raw/ (manifest.csv, source.json, files.zip). Writes: data/<domain>/curated/
{items,classes}.parquet and modality.json (the kind of data and its settings),
reports/metrics/curate_<domain>.json (gate summary, counts, and a digest of the curated data that
the report names), reports/validation/curate_<domain>.json (every expectation). Fails, writing no
data, when a Great Expectations check fails.
"""

from __future__ import annotations

import json

import pandas as pd

from fewshot.core import params as params_lib
from fewshot.core import paths
from fewshot.core.errors import UserError, one_line_errors
from fewshot.core.fileio import write_json, write_parquet
from fewshot.core.tracking import stage_run
from fewshot.data import curation, raw_files
from fewshot.data.subset import subset
from fewshot.data.validation import check_items
from fewshot.modalities import modality_of
from fewshot.stages.argv import domain_from_argv


@one_line_errors
def main() -> None:
    params = params_lib.load(models=False)  # builds no model: no torch
    name = domain_from_argv("curate", params.domains)
    cfg, where = params.domains[name].curate, paths.Domain(name)
    manifest = pd.read_csv(where.raw / "manifest.csv", dtype=str, keep_default_na=False)
    manifest = subset(manifest, cfg.max_classes, cfg.max_groups, cfg.min_groups,
                               cfg.split_seed, cfg.test_classes)
    kind = json.loads(where.source.read_text())["modality"]
    modality = modality_of(kind)
    settings = modality.settings(params.domains[name].settings, prefix=f"domains.{name}.settings.")
    with stage_run(f"curate@{name}", params.tracking.experiment, {"domain": name}) as run:
        run.log_params(params_lib.section(params, f"domains.{name}.curate") | {"modality": kind}
                       | {f"settings.{k}": v for k, v in modality.settings_dict(settings).items()})
        with raw_files.extracted(where.raw, manifest["path"]) as files:  # the subset's only
            items = curation.build_items(manifest, files, modality, settings)
        n_before = items["class_id"].nunique()
        items = curation.keep_classes_with_groups(items, cfg.min_groups)
        dropped = n_before - items["class_id"].nunique()
        if dropped:
            print(f"curate@{name}: dropped {dropped} of {n_before} classes with items in fewer than "
                  f"curate.min_groups={cfg.min_groups} groups")
        if items.empty:
            raise UserError(f"no class has items in domains.{name}.curate.min_groups={cfg.min_groups} "
                            "groups; lower it")
        _raise_if_unknown_test_classes(name, cfg.test_classes, set(items["class_id"]))
        by_groups = cfg.val_split == "groups"
        split_of = curation.assign_splits(
            items["class_id"].unique().tolist(), 0.0 if by_groups else cfg.val_fraction,
            cfg.test_fraction, cfg.split_seed, cfg.test_classes)
        items["split"] = items["class_id"].map(split_of)
        if by_groups:
            items["split"] = curation.hold_out_groups(items, cfg.val_fraction, cfg.split_seed)
        gate = check_items(items, cfg.min_groups, modality, settings, val_shares_classes=by_groups)
        summary = gate.summary() | _counts(items)
        write_json(where.curate_report, summary)
        scalars = {k: v for k, v in summary.items() if k != "checks"}
        write_json(where.curate_metrics, scalars)
        run.log_metrics({k: v for k, v in scalars.items() if k != "data_sha256"})
        run.log_params({"data_sha256": scalars["data_sha256"]})
        run.log_artifact(where.curate_report)
        if not gate.success:
            raise UserError(f"data validation failed: {gate.failure_line()} (see {where.curate_report})")
        write_parquet(where.items, items)
        write_parquet(where.classes, curation.class_table(items))
        write_json(where.kind, {"modality": kind, "settings": modality.settings_dict(settings)})
        print(f"curate@{name}: {len(items)} items, classes per split "
              f"{ {s: summary[f'classes_{s}'] for s in ('train', 'val', 'test')} } -> {where.items}")


def _raise_if_unknown_test_classes(domain: str, test_classes: list[str], kept: set[str]) -> None:
    unknown = [c for c in test_classes if c not in kept]
    if unknown:
        listed = ", ".join(sorted(kept)[:20]) + (", ..." if len(kept) > 20 else "")
        raise UserError(f"domains.{domain}.curate.test_classes names {', '.join(unknown)}, not "
                        f"among the curated classes ({listed})")


def _counts(items: pd.DataFrame) -> dict:
    per_split = items.groupby("split")["class_id"].nunique()
    counts = {f"classes_{s}": int(per_split.get(s, 0)) for s in ("train", "val", "test")}
    return counts | {"items": len(items), "groups": int(items["group"].nunique()),
                     "data_sha256": curation.digest(items)}


if __name__ == "__main__":
    main()
