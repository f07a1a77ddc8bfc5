"""train@ as one process against the same stage under `torchrun --nproc_per_node N` (gloo), on the
project's real data: wall time, the val accuracy it selected on and the test accuracy ± 95% CI that
evaluate@ then measures.

Usage (in a project after `dvc repro`):
    python benchmarks/torchrun_train.py [--models lc_protonet protonet] [--nproc 2] [--seeds 0 1 2]
        [--out FILE.json]

Each model's domain inputs (curated items, features, episodes) and params.yaml are copied to a
temporary project with its own MLflow sqlite store, so the workspace's outputs stay as DVC wrote
them. Per model: `python -m fewshot.stages.train M` (torch's default threads), then torchrun with
N ranks of one thread each (torchrun's default), each followed by `python -m fewshot.stages.evaluate
M`. N ranks take as many optimiser steps as one process, each on the average of N ranks' episodes:
N times the episodes per step. `--seeds`: each variant once per training seed (params `seed`; the
episode files stay the project's), for the spread that seeds alone make.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from stage_startup import cpu_model  # benchmarks/ is on sys.path: scripts run from it

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def one_variant(project: Path, tmp: Path, model: str, domain: str, nproc: int, seed: int) -> dict:
    work = tmp / f"{model}-{nproc}-{seed}"
    work.mkdir()
    params = yaml.safe_load((project / "params.yaml").read_text())
    (work / "params.yaml").write_text(yaml.safe_dump({**params, "seed": seed}, sort_keys=False))
    for part in ("curated", "features", "episodes"):
        shutil.copytree(project / "data" / domain / part, work / "data" / domain / part)
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{work}/mlflow.db", PYTHONHASHSEED="0")
    train = [sys.executable, "-m", "fewshot.stages.train", model]
    if nproc > 1:
        train = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc_per_node", str(nproc), *train[1:]]
    wall = run(train, work, env)
    run([sys.executable, "-m", "fewshot.stages.evaluate", model], work, env)
    info = torch.load(work / "data" / "models" / model / "model.pt", map_location="cpu",
                      weights_only=False)["info"]
    metrics = json.loads((work / "reports" / "metrics" / f"{model}.json").read_text())
    return {"processes": nproc, "seed": seed, "wall_s": round(wall, 2),
            "train_seconds": round(info["train_seconds"], 2),
            "best_val_accuracy": info["best_val_accuracy"], "best_step": info["best_step"],
            "test_accuracy": metrics["accuracy"], "test_ci95": metrics["accuracy_ci95"]}


def _mean(runs: list[dict], key: str) -> float:
    return round(sum(r[key] for r in runs) / len(runs), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lc_protonet", "protonet"])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="a project after dvc repro")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/torchrun_train.json")
    args = parser.parse_args()
    params = yaml.safe_load((args.project / "params.yaml").read_text())
    results = {"machine": f"{cpu_model()}, {os.cpu_count()} cores", "torch": torch.__version__,
               "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            domain = params["models"][model]["domain"]
            runs = {n: [one_variant(args.project, Path(tmp), model, domain, n, seed) for seed in args.seeds]
                    for n in (1, args.nproc)}
            single, ranks = runs[1], runs[args.nproc]
            summary = {key: {"single": _mean(single, key), "torchrun": _mean(ranks, key)}
                       for key in ("wall_s", "train_seconds", "best_val_accuracy", "test_accuracy")}
            summary["wall_ratio"] = round(summary["wall_s"]["torchrun"] / summary["wall_s"]["single"], 2)
            results["models"][model] = {"single": single, "torchrun": ranks, "mean": summary}
            for name, variant in (("1 process", single), (f"{args.nproc} ranks", ranks)):
                tests = ", ".join(f"{r['test_accuracy']:.4f} ± {r['test_ci95']:.4f}" for r in variant)
                vals = ", ".join(f"{r['best_val_accuracy']:.4f}" for r in variant)
                print(f"{model} {name}: wall {_mean(variant, 'wall_s'):.1f} s; val {vals}; test {tests}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
