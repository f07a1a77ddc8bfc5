"""Scoring 1,000 episodes on cached features: batched (`scoring.score`) against the per-episode
loop it replaced (`scoring.score_one_by_one`) and against easyfsl's per-episode style, side by side.

Usage: python benchmarks/batched_scoring.py [--episodes 1000] [--repeats 5] [--out FILE.json]

The data has the default run's shape: the 247 unseen test classes x 6 designs of the emoji test
split, 1,280-d EfficientNet-Lite0 features (generated: class means plus noise, through the real
feature cache and `ItemInputs`), 5-way 1-shot episodes with 1 query per class from the real
sampler. Models: protonet with a 128-d head (what the default run trains; random weights: scoring
cost does not depend on them) and the head-less nearest-prototype baseline. Three ways, each run
`--repeats` times interleaved (median and min of wall time, 2 torch threads):
- loop: the previous `score`, one episode at a time (pandas rows -> tensors -> method);
- easyfsl: easyfsl 1.5.0's `PrototypicalNetworks` (backbone = our head) called per episode on
  the episodes' tensors, gathered once (`process_support_set`, then `forward`), the loop its
  documentation shows, without its DataLoader;
- batched: `score`, the episodes gathered once and scored in chunks of 512.
Also checks the batched logits against the loop's (max |diff|) and the accuracies (identical).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from fewshot.core.fileio import write_json
from fewshot.data import features, text
from fewshot.data.episodes import EpisodeSampler, EpisodeSpec, layout, sample_table
from fewshot.data.inputs import ItemInputs
from fewshot.data.text import TextFeatures
from fewshot.evaluation.scoring import mean_accuracy, score, score_one_by_one
from fewshot.evaluation.timing import device_name
from fewshot.models.methods import METHODS
from fewshot.models.methods.base import Parts

CLASSES, DESIGNS, DIM, TEXT_DIM = 247, 6, 1280, 384


def _inputs(folder: Path) -> tuple[ItemInputs, pd.DataFrame]:
    rng = np.random.default_rng(0)
    items = pd.DataFrame([{"item_id": f"c{c:03d}-{d}", "class_id": f"c{c:03d}", "group": f"d{d}",
                           "sha256": f"{c:03d}{d}" * 16} for c in range(CLASSES) for d in range(DESIGNS)])
    means = rng.normal(size=(CLASSES, DIM))
    vectors = np.repeat(means, DESIGNS, axis=0) + rng.normal(scale=2.0, size=(len(items), DIM))
    features.save(features.path_for("efficientnet_lite0", folder), list(items["item_id"]),
                  list(items["sha256"]), torch.tensor(vectors, dtype=torch.float32))
    classes = pd.DataFrame({"class_id": sorted(items["class_id"].unique())})
    text.save(folder / "text.safetensors", classes, torch.randn(len(classes), TEXT_DIM),
              ["x"] * len(classes), torch.zeros(1, TEXT_DIM), ["{name}"])
    inputs = ItemInputs(items, "efficientnet_lite0", True, TextFeatures(folder / "text.safetensors"),
                        None, folder)
    return inputs, items


def _easyfsl_loop(method, inputs: ItemInputs, table: pd.DataFrame) -> float:
    """Mean accuracy by easyfsl's PrototypicalNetworks, one episode at a time."""
    from easyfsl.methods import PrototypicalNetworks
    model = PrototypicalNetworks(method.head).eval()
    episodes = layout(table)
    support, query = (inputs.of(list(ids.ravel())).unflatten(0, ids.shape)
                      for ids in (episodes.support_items, episodes.query_items))
    support_labels = torch.from_numpy(episodes.support_labels)
    query_labels = torch.from_numpy(episodes.query_labels)
    correct = []
    with torch.no_grad():
        for e in range(len(episodes)):
            model.process_support_set(support[e], support_labels[e])
            predicted = model(query[e]).argmax(1)
            correct.append((predicted == query_labels[e]).float().mean().item())
    return float(np.mean(correct))


def _cpu() -> str:
    names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")] if Path("/proc/cpuinfo").exists() else []
    return f"{names[0] if names else platform.processor() or platform.machine()}, {len(names) or '?'} cores"


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    cli.add_argument("--episodes", type=int, default=1000, help="test episodes to score (default 1000)")
    cli.add_argument("--repeats", type=int, default=5,
                     help="interleaved repeats of each way; the table shows the median (default 5)")
    cli.add_argument("--out", type=Path, help="also write the results (and the machine) to this JSON")
    args = cli.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        inputs, items = _inputs(Path(folder))
        table = sample_table(EpisodeSampler(items, EpisodeSpec(5, 1, 1), "test"), args.episodes, seed=0)
        cls = METHODS.get("protonet")
        models = {f"protonet (head {h})": cls(Parts(nn.Identity(), DIM, h, TEXT_DIM), cls.Options()).eval()
                  for h in (128, 0)}
        results = {}
        for name, method in models.items():
            ways = {"loop": lambda m=method: score_one_by_one(m, inputs, table),
                    "batched": lambda m=method: score(m, inputs, table)}
            if name.endswith("128)"):
                ways["easyfsl"] = lambda m=method: _easyfsl_loop(m, inputs, table)
            times = {way: [] for way in ways}
            outputs = {}
            for _ in range(args.repeats):
                for way, run in ways.items():
                    started = time.perf_counter()
                    outputs[way] = run()
                    times[way].append(time.perf_counter() - started)
            loop, batched = outputs["loop"], outputs["batched"]
            pairs = list(zip(loop, batched, strict=True))
            diff = max(float(np.abs(a["logits"] - b["logits"]).max()) for a, b in pairs)
            scale = max(float(np.abs(a["logits"]).max()) for a in loop)
            accuracy = {"loop": mean_accuracy(loop), "batched": mean_accuracy(batched)}
            if "easyfsl" in outputs:
                accuracy["easyfsl"] = outputs["easyfsl"]
            results[name] = {"seconds": {w: {"median": statistics.median(t), "min": min(t)}
                                         for w, t in times.items()},
                             "max_abs_logit_diff": diff, "max_abs_logit": scale, "accuracy": accuracy,
                             "same_predictions": all((a["logits"].argmax(1) == b["logits"].argmax(1)).all()
                                                     for a, b in pairs)}
    print(f"{args.episodes} episodes, 5-way 1-shot, {DIM}-d cached features; {_cpu()}, "
          f"torch {torch.__version__}, 2 threads; median of {args.repeats}")
    print("| model | loop | easyfsl per episode | batched | loop / batched | easyfsl / batched "
          "| max logit diff (relative) | same predictions |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        s = {w: v["median"] for w, v in r["seconds"].items()}
        easy = f"{s['easyfsl']:.3f} s" if "easyfsl" in s else "—"
        easy_ratio = f"{s['easyfsl'] / s['batched']:.1f}x" if "easyfsl" in s else "—"
        print(f"| {name} | {s['loop']:.3f} s | {easy} | {s['batched']:.3f} s | "
              f"{s['loop'] / s['batched']:.1f}x | {easy_ratio} | {r['max_abs_logit_diff']:.1e} "
              f"({r['max_abs_logit_diff'] / r['max_abs_logit']:.0e}) | "
              f"{r['same_predictions']} |")
    if args.out:
        write_json(args.out, {"machine": _cpu(), "device": device_name(), "arch": platform.machine(),
                              "torch": torch.__version__, "episodes": args.episodes,
                              "repeats": args.repeats, "results": results})


if __name__ == "__main__":
    main()
