"""Scoring a method on episodes: logits per episode, and their mean accuracy (training's model
selection and evaluation both use it).

The episodes of a file share one shape, so they are scored together: their inputs gathered once
into (E, N, ...) tensors (`episodes.layout`, `ItemInputs.episodes`) and each method's
`batch_logits` run on chunks of them: equal to scoring episode by episode (`score_one_by_one`, the
reference) to float rounding, and much faster (benchmarks/batched_scoring.py, docs/results.md)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from fewshot.data import episodes as episodes_lib
from fewshot.data.inputs import ItemInputs
from fewshot.evaluation import metrics
from fewshot.models.methods.base import Episode, FewShotMethod


def episode_logits(method: FewShotMethod, episode: Episode) -> torch.Tensor:
    method.process_support_set(episode.support, episode.support_labels, episode.class_text)
    return method(episode.query)


@torch.no_grad()
def score(method: FewShotMethod, inputs: ItemInputs, table: pd.DataFrame,
          chunk: int = 512) -> list[dict]:
    """Per episode, in episode order: query labels (N_q,) and logits (N_q, n_way). Episodes of one
    shape are scored `chunk` at a time (bounded memory); a table whose episodes differ in shape
    episode by episode."""
    layout = episodes_lib.layout(table)
    if layout is None:
        return score_one_by_one(method, inputs, table)
    method.eval()
    results = []
    with backbone_applied_once(method, inputs, table["item_id"]) as encoded:
        for start in range(0, len(layout), chunk):
            episodes = encoded.episodes(layout[start : start + chunk])
            logits = method.batch_logits(episodes)
            results += [{"labels": labels, "logits": episode_logits}
                        for labels, episode_logits in zip(episodes.query_labels.numpy(),
                                                          logits.numpy(), strict=True)]
    return results


@torch.no_grad()
def score_one_by_one(method: FewShotMethod, inputs: ItemInputs, table: pd.DataFrame) -> list[dict]:
    """`score`, one episode at a time: its reference, and the path for episodes of mixed shapes."""
    method.eval()
    results = []
    with backbone_applied_once(method, inputs, table["item_id"]) as encoded:
        for support, query in episodes_lib.iter_episodes(table):
            episode = encoded.episode(support, query)
            logits = episode_logits(method, episode)
            results.append({"labels": episode.query_labels.numpy(), "logits": logits.numpy()})
    return results


@contextmanager
def backbone_applied_once(method: FewShotMethod, inputs: ItemInputs, item_ids
                          ) -> Iterator[ItemInputs]:
    """In eval mode an item's backbone output does not depend on its episode: encode each item of
    the episodes once, and let the method see those features through an identity backbone (its own
    backbone is put back on exit). A method on cached features (identity backbone) is left as is.
    Equal to encoding per episode up to float rounding (batch shapes differ)."""
    backbone = method.backbone
    if isinstance(backbone, nn.Identity):
        yield inputs
        return
    encoded = inputs.encoded(backbone, item_ids)
    method.backbone = nn.Identity()
    try:
        yield encoded
    finally:
        method.backbone = backbone


def mean_accuracy(results: list[dict]) -> float:
    return float(np.mean([metrics.accuracy(r["logits"], r["labels"]) for r in results]))
