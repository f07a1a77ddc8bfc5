"""Calibration diagnostic: how low can ECE go with one temperature? For each model, the test ECE at
the temperature evaluate fitted on the val episodes beside the ECE at the temperature that minimises
NLL on the *test* episodes themselves. The second is an oracle bound, not a valid calibration (it
looks at test labels): when even it misses a target, no temperature fitted on any split reaches it,
and the miscalibration is not a global scale (it differs between classes or episodes).

Usage (after `dvc repro`): python benchmarks/calibration_bound.py MODEL [MODEL ...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from fewshot.core import params as params_lib
from fewshot.core import paths
from fewshot.core.fileio import write_json
from fewshot.data import curation
from fewshot.data.inputs import ItemInputs
from fewshot.data.text import TextFeatures
from fewshot.evaluation.calibration import fit_temperature
from fewshot.evaluation.scoring import score
from fewshot.evaluation.summary import summarise
from fewshot.models import checkpoint


def bound(name: str, params: params_lib.Params) -> dict:
    domain_name, _ = params.domain_of(name)
    where = paths.Domain(domain_name)
    method, info = checkpoint.load(paths.model_file(name), on_features=True)
    items = pd.read_parquet(where.items)
    test_items = items[items["split"] == "test"].reset_index(drop=True)
    modality, _ = curation.curated_kind(where.kind)
    inputs = ItemInputs(test_items, info["spec"]["backbone"], info["frozen"], TextFeatures(where.text),
                        modality, where.features)
    results = score(method, inputs, pd.read_parquet(where.test_episodes))
    oracle_t = fit_temperature([r["logits"] for r in results], [r["labels"] for r in results])
    reported = json.loads((paths.METRICS / f"{name}.json").read_text())
    return {"model": name, "accuracy": reported["accuracy"], "ece_raw": reported["ece"],
            "temperature_val": reported["temperature"], "ece_val_temperature": reported["ece_calibrated"],
            "temperature_test_oracle": oracle_t,
            "ece_test_oracle": summarise(results, params.evaluate.ece_bins, oracle_t)[0]["ece"]}


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("models", nargs="+")
    cli.add_argument("--out", type=Path)
    args = cli.parse_args()
    params = params_lib.load()
    rows = [bound(name, params) for name in args.models]
    print("| model | accuracy | ECE raw | T (val) -> ECE | T (test, oracle) -> ECE |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['accuracy']:.4f} | {r['ece_raw']:.4f} | {r['temperature_val']:.2f} -> "
              f"{r['ece_val_temperature']:.4f} | {r['temperature_test_oracle']:.2f} -> "
              f"{r['ece_test_oracle']:.4f} |")
    if args.out:
        write_json(args.out, rows)


if __name__ == "__main__":
    main()
