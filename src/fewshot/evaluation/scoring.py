"""Scoring a method on episodes: logits per episode, and their mean accuracy (training's model
selection and evaluation both use it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

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
    for support, query in episodes_lib.iter_episodes(table):
        episode = inputs.episode(support, query)
        logits = episode_logits(method, episode)
        results.append({"labels": episode.query_labels.numpy(), "logits": logits.numpy()})
    return results


def mean_accuracy(results: list[dict]) -> float:
    return float(np.mean([metrics.accuracy(r["logits"], r["labels"]) for r in results]))
