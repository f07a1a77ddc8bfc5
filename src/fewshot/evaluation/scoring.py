"""Scoring a method on episodes: logits per episode, and their mean accuracy (training's model
selection and evaluation both use it)."""

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
def score(method: FewShotMethod, inputs: ItemInputs, table: pd.DataFrame) -> list[dict]:
    """Per episode: query labels (N_q,) and logits (N_q, n_way)."""
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
