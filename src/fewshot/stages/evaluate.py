"""Stage `evaluate@<model>`: score the fixed test episodes; write metrics, plots data, timings.

Usage: python -m fewshot.stages.evaluate MODEL  (run by `dvc repro` as evaluate@MODEL; MODEL is a
key of params `models`)
Params: seed, n_way, n_shot, evaluate.* (ece_bins, latency_episodes, latency_warmup,
latency_queries, latency_repeats), and of the model's domain D: domains.D.n_query
Reads: data/models/<model>/model.pt; of its domain: data/D/episodes/{val,test}.parquet,
data/D/features, data/D/curated.
Writes: data/models/<model>.calibration.json (the temperature, for inference with this very
checkpoint), reports/metrics/<model>.json (accuracy ± CI, ECE, NLL, Brier — raw and after a temperature
fitted on the val episodes — latency, device, and warnings: accuracy below chance, a temperature
at its search bound, a training n_way clamped to the classes there are),
reports/plots/<model>/{episodes,reliability,reliability_calibrated,confusion}.csv (confusion:
queries per true and predicted test class, pooled over the episodes).
"""

from __future__ import annotations

import sys

import pandas as pd
import torch

from fewshot.core import params as params_lib
from fewshot.core import paths
from fewshot.core.errors import UserError, one_line_errors
from fewshot.core.fileio import sha256_file, write_csv, write_json
from fewshot.core.tracking import stage_run
from fewshot.data import curation, features
from fewshot.data import episodes as episodes_lib
from fewshot.data.inputs import ItemInputs
from fewshot.data.text import TextFeatures
from fewshot.evaluation.scoring import score
from fewshot.evaluation.summary import calibrated, confusion, result_warnings, summarise
from fewshot.evaluation.timing import device_name, time_from_inputs
from fewshot.models import checkpoint
from fewshot.stages.argv import model_from_argv


@one_line_errors
def main() -> None:
    params = params_lib.load()
    name = model_from_argv("evaluate", params.models)
    domain_name, domain = params.domain_of(name)
    where = paths.Domain(domain_name)
    torch.manual_seed(params.seed)
    text = TextFeatures(where.text)
    model_file = paths.model_file(name)
    method, info = checkpoint.load(model_file, on_features=True)
    table, val_table = pd.read_parquet(where.test_episodes), pd.read_parquet(where.val_episodes)
    test_hash, val_hash = episodes_lib.table_hash(table), episodes_lib.table_hash(val_table)
    if info["val_episodes_hash"] != val_hash:
        raise UserError(f"model {name} was selected on val episodes {info['val_episodes_hash'][:12]} "
                        f"but the val file is {val_hash[:12]}; re-run train@{name}")
    items = pd.read_parquet(where.items)
    test_items = items[items["split"] == "test"].reset_index(drop=True)
    modality, _ = curation.curated_kind(where.kind)
    backbone, frozen = info["spec"]["backbone"], info["frozen"]
    tags = {"model": name, "domain": domain_name, "method": info["spec"]["method"],
            "backbone": backbone, "episodes_hash": test_hash}
    with stage_run(f"evaluate@{name}", params.tracking.experiment, tags) as run:
        run.log_params(params_lib.section(params, "seed", "n_way", "n_shot",
                                          f"domains.{domain_name}.n_query", "evaluate"))
        run.log_inputs([
            {"name": f"{domain_name}/test episodes", "path": where.test_episodes, "sha256": test_hash,
             "context": "evaluation"},
            {"name": f"{domain_name}/val episodes", "path": where.val_episodes, "sha256": val_hash,
             "context": "calibration"},
            {"name": f"{domain_name}/curated items", "path": where.items,
             "sha256": curation.digest(items), "context": "evaluation"},
            {"name": f"model {name}", "path": model_file, "sha256": sha256_file(model_file),
             "context": "evaluation"},
            *features.logged_inputs(where, backbone if frozen else None, "evaluation")])
        results = score(method, ItemInputs(test_items, backbone, frozen, text, modality,
                                           where.features), table)
        summary, records, reliability = summarise(results, params.evaluate.ece_bins)
        val_items = items[items["split"] == "val"].reset_index(drop=True)
        val_results = score(method, ItemInputs(val_items, backbone, frozen, text, modality,
                                               where.features), val_table)
        after, reliability_after = calibrated(val_results, results, params.evaluate.ece_bins)
        summary |= after
        raw_method, _ = checkpoint.load(model_file, on_features=False)
        timing = time_from_inputs(raw_method, ItemInputs(test_items, backbone, False, text, modality,
                                                         None),
                                  table, params.evaluate.latency_episodes, params.evaluate.latency_warmup,
                                  params.evaluate.latency_queries, params.evaluate.latency_repeats)
        trained = info["best_step"] > 0 or info["spec"].get("pretrain_steps", 0) > 0
        report = {"model": name, "domain": domain_name, "method": info["spec"]["method"],
                  "backbone": backbone, "frozen": frozen, "trained": trained,
                  "train_seconds": info["train_seconds"], "n_way": params.n_way,
                  "n_shot": params.n_shot, "n_query": domain.n_query, "device": device_name(),
                  "episodes_hash": test_hash} | summary | {"latency": timing}
        report["warnings"] = info.get("warnings", []) + result_warnings(summary, params.n_way)
        write_json(paths.calibration_file(model_file), {"model_sha256": sha256_file(model_file),
                                                  "temperature": summary["temperature"],
                                                  "val_episodes_hash": val_hash})
        write_json(paths.METRICS / f"{name}.json", report)
        write_csv(paths.PLOTS / name / "episodes.csv", records)
        write_csv(paths.PLOTS / name / "reliability.csv", reliability)
        write_csv(paths.PLOTS / name / "reliability_calibrated.csv", reliability_after)
        write_csv(paths.PLOTS / name / "confusion.csv", confusion(results, table))
        run.log_metrics(summary | timing)
        run.log_artifact(paths.METRICS / f"{name}.json")
        run.log_artifact(paths.PLOTS / name, folder="plots")
        print(f"evaluate@{name}: accuracy {summary['accuracy']:.4f} ± "
              f"{summary['accuracy_ci95']:.4f}, ECE {summary['ece']:.4f} -> "
              f"{summary['ece_calibrated']:.4f} at T={summary['temperature']:.3f}, query p50 "
              f"{timing['query_p50_ms']:.1f} ms on {report['device']}")
        for warning in report["warnings"]:
            print(f"evaluate@{name}: warning: {warning}", file=sys.stderr)


if __name__ == "__main__":
    main()
