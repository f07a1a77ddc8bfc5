"""Inference benchmark: per-query latency with a cached (saved) support set, and batch throughput.

Usage (after `dvc repro`): python benchmarks/predict.py [--model protonet] [--queries 100]
                                                       [--batch 256] [--out FILE.json]

Support: 5 test classes x 1 image from one design, built once, saved and reloaded (no embedding at
query time) and given to a `Predictor` once. Single query: the predictor on one image file — read,
normalise to the model's image size, backbone, head, calibrated softmax — timed `--queries` times
after 5 warm-up calls; p50/p95.
Batch: the same for `--batch` files in one call (images/s). Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from fewshot.core.fileio import write_json
from fewshot.evaluation.timing import device_name
from fewshot.inference import trained as inference
from fewshot.inference.predict import Predictor, Processed
from fewshot.inference.support import SupportSet, from_folder
from fewshot.tools.example import export


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("--model", default="protonet")
    cli.add_argument("--queries", type=int, default=100)
    cli.add_argument("--batch", type=int, default=256)
    cli.add_argument("--out", type=Path)
    args = cli.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        trained = inference.load(args.model)
        support_dir, _ = export(tmp / "example", 5)
        from_folder(trained, support_dir).save(tmp / "support.safetensors")
        started = time.perf_counter()
        support = SupportSet.load(tmp / "support.safetensors", trained)
        load_ms = (time.perf_counter() - started) * 1000
        _, pool = export(tmp / "pool", 60, seed=1)  # 60 classes x up to 5 designs of query images
        files = sorted(pool.glob("*.png"))
        batch = (files * (args.batch // len(files) + 1))[: args.batch]
        predictor = Predictor(Processed(trained, support), batch_size=args.batch)  # support: once
        for f in files[:5]:
            predictor([f])
        single = []
        for i in range(args.queries):
            started = time.perf_counter()
            predictor([files[i % len(files)]])
            single.append((time.perf_counter() - started) * 1000)
        predictor(batch[:16])
        started = time.perf_counter()
        predictor(batch)
        batch_s = time.perf_counter() - started
    quantiles = statistics.quantiles(single, n=20)
    result = {"model": args.model, "backbone": trained.spec["backbone"],
              "image_size": trained.settings.size, "device": device_name(),
              "machine": platform.processor() or platform.machine(),
              "torch_threads": torch.get_num_threads(), "support_load_ms": load_ms,
              "query_p50_ms": statistics.median(single), "query_p95_ms": quantiles[18],
              "queries": args.queries, "batch": args.batch, "batch_seconds": batch_s,
              "batch_images_per_s": args.batch / batch_s}
    print(f"| model | backbone | image size | device | single query p50 / p95 (ms) | "
          f"batch of {args.batch}: s (images/s) | support set load (ms) |\n|---|---|---|---|---|---|---|\n"
          f"| {args.model} | {result['backbone']} | {result['image_size']} | {result['device']} | "
          f"{result['query_p50_ms']:.1f} / {result['query_p95_ms']:.1f} | "
          f"{batch_s:.2f} ({result['batch_images_per_s']:.0f}) | {load_ms:.1f} |")
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
