"""Light-curve inference benchmark: per-query latency from a raw CSV (read, sort, tokens, encoder,
head, calibrated softmax), the trained CNN protonet beside the no-training feature baseline, in one
run on the same files.

Usage (after `dvc repro`): python benchmarks/predict_light_curves.py [--models lc_protonet
                                        lc_baseline_features] [--queries 200] [--out FILE.json]

Support: one object per test class (5 rare PLAsTiCC classes), from data/light_curves/raw (files.zip), given to
a `Predictor` once. Query: the predictor on one CSV file, timed `--queries` times over different
objects after 10 warm-up calls; p50/p95. Target (issue 13): p50 <= 5 ms on this CPU.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from fewshot.core import paths
from fewshot.core.fileio import write_json
from fewshot.data import raw_files
from fewshot.evaluation.timing import device_name
from fewshot.inference import trained as inference
from fewshot.inference.predict import Predictor, Processed
from fewshot.inference.support import from_folder


def files_by_class(where: paths.Domain) -> dict[str, list[str]]:
    """Manifest paths of the test classes' raw CSVs, by class."""
    items = pd.read_parquet(where.items, columns=["class_id", "group", "split"])
    manifest = pd.read_csv(where.raw / "manifest.csv", dtype=str, keep_default_na=False)
    test = set(items.loc[items["split"] == "test", "class_id"])
    chosen = manifest[manifest["class_id"].isin(test)]
    return {c: list(rows["path"]) for c, rows in chosen.groupby("class_id")}


def time_model(name: str, by_class: dict[str, list[Path]], queries: int, tmp: Path) -> dict:
    trained = inference.load(name)
    support_dir = tmp / name
    for class_id, files in by_class.items():
        (support_dir / class_id).mkdir(parents=True)
        shutil.copy(files[0], support_dir / class_id / files[0].name)
    predictor = Predictor(Processed(trained, from_folder(trained, support_dir)))
    pool = [f for files in by_class.values() for f in files[1:]]
    for f in pool[:10]:
        predictor([f])
    single = []
    for i in range(queries):
        started = time.perf_counter()
        predictor([pool[(i * 7) % len(pool)]])
        single.append((time.perf_counter() - started) * 1000)
    return {"model": name, "backbone": trained.spec["backbone"], "queries": queries,
            "query_p50_ms": statistics.median(single),
            "query_p95_ms": statistics.quantiles(single, n=20)[18]}


def time_readers(by_class: dict[str, list[Path]], queries: int) -> dict:
    """The CSV read alone, same files: the modality's csv-module reader (values checked, bands
    mapped) beside a bare `pandas.read_csv` (what the reader used before; no checks)."""
    from fewshot.modalities.light_curve import LightCurveSettings, read_table

    settings = LightCurveSettings(bands=list("ugrizy"), span_days=1100, max_points=400, min_points=10)
    pool = [f for files in by_class.values() for f in files][:queries]
    timings = {}
    for name, read in (("csv_module_reader", lambda f: read_table(f, settings)),
                       ("pandas_read_csv", lambda f: pd.read_csv(f, dtype=str, keep_default_na=False))):
        for f in pool[:10]:
            read(f)
        times = []
        for f in pool:
            started = time.perf_counter()
            read(f)
            times.append((time.perf_counter() - started) * 1000)
        timings[f"{name}_p50_ms"] = statistics.median(times)
    return timings


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("--models", nargs="+", default=["lc_protonet", "lc_baseline_features"])
    cli.add_argument("--queries", type=int, default=200)
    cli.add_argument("--out", type=Path)
    args = cli.parse_args()
    torch.manual_seed(0)
    where = paths.Domain("light_curves")
    chosen = files_by_class(where)
    with raw_files.extracted(where.raw, [p for rel in chosen.values() for p in rel]) as raw, \
            tempfile.TemporaryDirectory() as folder:
        by_class = {c: [raw / p for p in rel] for c, rel in chosen.items()}
        rows = [time_model(name, by_class, args.queries, Path(folder)) for name in args.models]
        readers = time_readers(by_class, args.queries)
    result = {"device": device_name(), "machine": platform.processor() or platform.machine(),
              "torch_threads": torch.get_num_threads(), "models": rows, "csv_read": readers}
    print("| model | backbone | single query from a raw CSV, p50 / p95 (ms) |\n|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['backbone']} | {row['query_p50_ms']:.2f} / "
              f"{row['query_p95_ms']:.2f} |")
    if len(rows) == 2:
        print(f"\nratio {rows[0]['model']} / {rows[1]['model']}: "
              f"{rows[0]['query_p50_ms'] / rows[1]['query_p50_ms']:.2f}x (p50, same run, {result['device']})")
    print(f"CSV read alone, p50: csv-module reader {readers['csv_module_reader_p50_ms']:.2f} ms "
          f"(checked) vs pandas.read_csv {readers['pandas_read_csv_p50_ms']:.2f} ms (unchecked)")
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
