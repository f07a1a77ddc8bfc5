"""Episodic training and scoring, shared by the train and evaluate stages."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from fewshot import episodes as episodes_lib
from fewshot import features
from fewshot.images import decode_batch
from fewshot.methods.base import Episode, FewShotMethod
from fewshot.progress import progress
from fewshot.text import TextFeatures


class ItemInputs:
    """Model inputs of items addressed by `item_id` (cached features, or uint8 images), and the
    cached text embedding of each class."""

    def __init__(self, items: pd.DataFrame, backbone: str, on_features: bool, text: TextFeatures):
        if on_features:
            self.tensor = features.load_for(items, backbone)
        else:
            self.tensor = torch.from_numpy(decode_batch(list(items["image"])))
        self._row = {item: i for i, item in enumerate(items["item_id"])}
        self.text = text

    def episode(self, support: pd.DataFrame, query: pd.DataFrame) -> Episode:
        classes = support.drop_duplicates("label").sort_values("label")["class_id"].tolist()
        return Episode(self._take(support), _labels(support), self._take(query), _labels(query),
                       self.text.features[self.text.rows(classes)])

    def _take(self, rows: pd.DataFrame) -> torch.Tensor:
        return self.tensor[[self._row[i] for i in rows["item_id"]]]


def _labels(rows: pd.DataFrame) -> torch.Tensor:
    return torch.tensor(rows["label"].to_numpy(), dtype=torch.long)


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
    return float(np.mean([np.mean(r["logits"].argmax(1) == r["labels"]) for r in results]))


@dataclass(frozen=True)
class TrainConfig:
    episodes: int
    lr: float
    weight_decay: float
    val_every: int


def train(method: FewShotMethod, inputs: ItemInputs, sampler: episodes_lib.EpisodeSampler,
          cfg: TrainConfig, val_table: pd.DataFrame, seed: int,
          log: Callable[[dict, int], None]) -> tuple[dict, float, int]:
    """Train on sampled episodes; keep the state with the best val-episode accuracy.

    Returns:
        (best state dict, its val accuracy, the episode it was reached at; 0 = untrained).
    """
    best_acc, best_step = mean_accuracy(score(method, inputs, val_table)), 0
    best_state = copy.deepcopy(method.state_dict())
    log({"val_accuracy": best_acc}, 0)
    trainable = [p for p in method.parameters() if p.requires_grad]
    if cfg.episodes == 0 or not trainable:
        return best_state, best_acc, best_step
    optimiser = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=cfg.episodes)
    rng = np.random.default_rng(seed)
    losses = []
    for step in progress(range(1, cfg.episodes + 1), "train episodes"):
        method.train()
        rows = pd.DataFrame(sampler.sample(rng), columns=episodes_lib.COLUMNS[1:])
        loss = method.loss(inputs.episode(*episodes_lib.split_roles(rows)))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if step % cfg.val_every == 0 or step == cfg.episodes:
            acc = mean_accuracy(score(method, inputs, val_table))
            log({"train_loss": float(np.mean(losses)), "val_accuracy": acc}, step)
            losses = []
            if acc > best_acc:
                best_acc, best_step, best_state = acc, step, copy.deepcopy(method.state_dict())
    return best_state, best_acc, best_step
