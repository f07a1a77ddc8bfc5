"""Latency of a method from raw inputs (decoded items, through the backbone): support-set
processing per episode and single-query prediction, with warm-up; the device named."""

from __future__ import annotations

import platform
import time

import pandas as pd
import torch

from fewshot.data.episodes import iter_episodes
from fewshot.data.inputs import ItemInputs
from fewshot.evaluation import metrics
from fewshot.models.methods.base import FewShotMethod


@torch.no_grad()
def time_from_inputs(method: FewShotMethod, inputs: ItemInputs, table: pd.DataFrame,
                     n_episodes: int, warmup: int) -> dict:
    """Support-set processing per episode and single-query prediction, both from decoded items
    (through the backbone, as a user's query goes).

    The first `warmup` episodes are run but not timed.
    """
    method.eval()
    support_ms, query_ms = [], []
    for index, (support, query) in enumerate(iter_episodes(table)):
        if index >= n_episodes + warmup:
            break
        episode = inputs.episode(support, query)
        start = time.perf_counter()
        method.process_support_set(episode.support, episode.support_labels, episode.class_text)
        after_support = time.perf_counter()
        per_query = []
        for q in range(len(episode.query)):
            t0 = time.perf_counter()
            method(episode.query[q : q + 1])
            per_query.append((time.perf_counter() - t0) * 1000)
        if index >= warmup:
            support_ms.append((after_support - start) * 1000)
            query_ms += per_query
    timing = {f"support_{k}": v for k, v in metrics.latency_summary(support_ms).items()}
    timing |= {f"query_{k}": v for k, v in metrics.latency_summary(query_ms).items()}
    return timing | {"timed_episodes": len(support_ms)}


def device_name() -> str:
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
