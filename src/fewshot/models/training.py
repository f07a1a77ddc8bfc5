"""Episodic training: sampled episodes, AdamW with a cosine schedule, the best state by val accuracy."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from fewshot.core.progress import progress
from fewshot.data import episodes as episodes_lib
from fewshot.data.inputs import ItemInputs
from fewshot.evaluation.scoring import mean_accuracy, score
from fewshot.models.methods.base import FewShotMethod


@dataclass(frozen=True)
class TrainConfig:
    episodes: int
    lr: float
    weight_decay: float
    val_every: int


def train(method: FewShotMethod, inputs: ItemInputs, sampler: episodes_lib.EpisodeSampler,
          cfg: TrainConfig, val_table: pd.DataFrame, seed: int,
          log: Callable[[dict, int], None]) -> tuple[dict, float, int]:
    """Let the method observe the training items, train on sampled episodes; keep the state with
    the best val-episode accuracy.

    Returns:
        (best state dict, its val accuracy, the episode it was reached at; 0 = untrained).
    """
    method.observe(lambda: inputs.of(sampler.item_ids))
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
