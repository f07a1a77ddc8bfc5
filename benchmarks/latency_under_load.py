"""Does the latency gate stay green on a busy machine, and still catch a slower model?

Usage (after `dvc repro`): python benchmarks/latency_under_load.py [--model protonet]
                           [--episodes 10] [--out FILE.json]

Times one trained model's single-query latency as evaluate does (`fewshot.evaluation.timing`)
three ways: on an idle machine (the baseline), with a CPU hog beside it (one busy process per core:
an unchanged rerun on a loaded CI runner), and with the hog and a planted slowdown (every query
computed three times). Each run becomes a gate snapshot entry and goes through the gate's latency
rule (`gate.latency_ratio`, `gate.latency_min_ms` of params.yaml). For contrast it also times the
way evaluate did before (two threads, one run per call, wall time only) idle and under the hog.
Side by side in one run; prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from fewshot.core import params as params_lib
from fewshot.core import paths
from fewshot.core.fileio import write_json
from fewshot.data import curation
from fewshot.data.inputs import ItemInputs
from fewshot.data.text import TextFeatures
from fewshot.evaluation import gate
from fewshot.evaluation.timing import cpu_hog, device_name, fastest, time_from_inputs
from fewshot.models import checkpoint


class Slower(torch.nn.Module):
    """The planted regression: every query computed `times` times."""

    def __init__(self, method, times: int):
        super().__init__()
        self.method, self.times = method, times

    def process_support_set(self, *args):
        return self.method.process_support_set(*args)

    def forward(self, query):
        for _ in range(self.times - 1):
            self.method(query)
        return self.method(query)


def old_style(method, inputs: ItemInputs, table: pd.DataFrame, n_episodes: int) -> float:
    """Query p50 as evaluate measured it before: all threads, one run, wall time."""
    from fewshot.data.episodes import iter_episodes

    method.eval()
    times = []
    with torch.no_grad():
        for index, (support, query) in enumerate(iter_episodes(table)):
            if index >= n_episodes:
                break
            episode = inputs.episode(support, query)
            method.process_support_set(episode.support, episode.support_labels, episode.class_text)
            times += [fastest(partial(method, episode.query[q : q + 1]), 1)[0]
                      for q in range(min(5, len(episode.query)))]
    return float(pd.Series(times).median())


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("--model", default="protonet")
    cli.add_argument("--episodes", type=int, default=10)
    cli.add_argument("--out", type=Path)
    args = cli.parse_args()
    params = params_lib.load()
    domain, _ = params.domain_of(args.model)
    where = paths.Domain(domain)
    items = pd.read_parquet(where.items)
    test_items = items[items["split"] == "test"].reset_index(drop=True)
    modality, _ = curation.curated_kind(where.kind)
    method, info = checkpoint.load(paths.model_file(args.model), on_features=False)
    inputs = ItemInputs(test_items, info["spec"]["backbone"], False, TextFeatures(where.text),
                        modality, None)
    table = pd.read_parquet(where.test_episodes)
    cfg = params.evaluate

    def timed(model) -> dict:
        t = time_from_inputs(model, inputs, table, args.episodes, 2, cfg.latency_queries,
                             cfg.latency_repeats)
        return {"device": device_name(), "query_p50_ms": t["query_p50_ms"],
                "query_cpu_p50_ms": t["query_cpu_p50_ms"], "load_1min": t["load_1min"]}

    runs = {"idle": timed(method), "idle, old way": {"query_p50_ms": old_style(method, inputs, table,
                                                                                args.episodes)}}
    with cpu_hog():
        runs["hog"] = timed(method)
        runs["hog, planted 3x slower"] = timed(Slower(method, 3))
        runs["hog, old way"] = {"query_p50_ms": old_style(method, inputs, table, args.episodes)}
    verdicts = {name: gate._slower(runs["idle"], runs[name], params.gate) or "ok"
                for name in ("hog", "hog, planted 3x slower")}
    old = runs["hog, old way"]["query_p50_ms"] / runs["idle, old way"]["query_p50_ms"]
    verdicts["hog, old way"] = (f"{old:.1f}x the idle p50: "
                                f"{'red' if old > params.gate.latency_ratio else 'green'} under the old rule")
    print("| run | query p50 wall ms | CPU ms | load | gate |\n|---|---|---|---|---|")
    for name, run in runs.items():
        cpu = run.get("query_cpu_p50_ms")
        print(f"| {name} | {run['query_p50_ms']:.1f} | {'' if cpu is None else f'{cpu:.1f}'} | "
              f"{run.get('load_1min', '')} | {verdicts.get(name, 'baseline')} |")
    if args.out:
        write_json(args.out, {"model": args.model, "runs": runs, "verdicts": verdicts,
                              "cpu_count": os.cpu_count()})


if __name__ == "__main__":
    main()
