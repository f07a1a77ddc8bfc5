"""Latency of a method from raw inputs (decoded items, through the backbone): support-set
processing per episode and single-query prediction, with warm-up; the device and the machine's
load named.

Made to mean the same on a busy machine (docs/experiments.md):
- one thread: with two, a query's threads wait for each other whenever another process holds a
  core, and spin while they wait (measured on 2 cores beside a busy pipeline: 54 ms wall and 78 ms
  CPU with 2 threads, 22 ms and 22 ms with one, for the same query);
- every timed call runs `repeats` times back to back and keeps its fastest run (another process
  can only add time);
- each call's CPU time is kept beside its wall time. Wall time that grows while CPU time does not
  is waiting for the processor, not more work; the gate tells the two apart
  (`fewshot.evaluation.gate`).
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import time
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator

import pandas as pd
import torch

from fewshot.data.episodes import iter_episodes
from fewshot.data.inputs import ItemInputs
from fewshot.evaluation import metrics
from fewshot.models.methods.base import FewShotMethod


def fastest(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(wall ms, CPU ms) of the fastest of `repeats` back-to-back runs of `call`."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        call()
        best_wall = min(best_wall, (time.perf_counter() - wall) * 1000)
        best_cpu = min(best_cpu, (time.process_time() - cpu) * 1000)
    return best_wall, best_cpu


@torch.no_grad()
def time_from_inputs(method: FewShotMethod, inputs: ItemInputs, table: pd.DataFrame,
                     n_episodes: int, warmup: int, queries: int, repeats: int) -> dict:
    """Support-set processing per episode and single-query prediction (the first `queries` of each
    episode), both from decoded items through the backbone, as a user's query goes, on one thread;
    wall and CPU milliseconds, each the fastest of `repeats` runs. The first `warmup` episodes are
    not timed.
    """
    method.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _timed_episodes(method, inputs, table, n_episodes, warmup, queries, repeats)
    finally:
        torch.set_num_threads(threads)


def _timed_episodes(method: FewShotMethod, inputs: ItemInputs, table: pd.DataFrame,
                    n_episodes: int, warmup: int, queries: int, repeats: int) -> dict:
    load = os.getloadavg()[0]
    support_ms, support_cpu, query_ms, query_cpu = [], [], [], []
    for index, (support, query) in enumerate(iter_episodes(table)):
        if index >= n_episodes + warmup:
            break
        e = inputs.episode(support, query)
        wall, cpu = fastest(partial(method.process_support_set, e.support, e.support_labels,
                                    e.class_text), repeats)
        timed = [fastest(partial(method, e.query[q : q + 1]), repeats)
                 for q in range(min(queries, len(e.query)))]
        if index >= warmup:
            support_ms.append(wall)
            support_cpu.append(cpu)
            query_ms += [w for w, _ in timed]
            query_cpu += [c for _, c in timed]
    timing = {f"support_{k}": v for k, v in metrics.latency_summary(support_ms).items()}
    timing |= {f"query_{k}": v for k, v in metrics.latency_summary(query_ms).items()}
    timing |= {"support_cpu_p50_ms": metrics.latency_summary(support_cpu)["p50_ms"],
               "query_cpu_p50_ms": metrics.latency_summary(query_cpu)["p50_ms"]}
    return timing | {"timed_episodes": len(support_ms), "timed_queries": len(query_ms),
                     "repeats": repeats, "threads": 1, "load_1min": round(load, 2),
                     "cpu_count": os.cpu_count()}


def _spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


@contextmanager
def cpu_hog() -> Iterator[None]:
    """One busy process per core while the block runs: a loaded machine, for checking that the
    timings above mean the same there (benchmarks/latency_under_load.py and its test)."""
    stop = multiprocessing.Event()
    hogs = [multiprocessing.Process(target=_spin, args=(stop,), daemon=True)
            for _ in range(os.cpu_count() or 1)]
    for hog in hogs:
        hog.start()
    time.sleep(1.0)  # let the scheduler hand them the cores
    try:
        yield
    finally:
        stop.set()
        for hog in hogs:
            hog.join(timeout=10)


def device_name() -> str:
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
