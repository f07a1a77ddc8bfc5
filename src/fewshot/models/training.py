"""Episodic training: sampled episodes, AdamW with a cosine schedule, the best state by val accuracy;
optionally after supervised pretraining of the backbone on the training classes."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from fewshot.core.errors import UserError
from fewshot.core.progress import progress
from fewshot.data import episodes as episodes_lib
from fewshot.data.inputs import ItemInputs
from fewshot.evaluation.scoring import mean_accuracy, score
from fewshot.models.methods.base import FewShotMethod
from fewshot.models.resume import Resume


@dataclass(frozen=True)
class TrainConfig:
    episodes: int
    lr: float
    weight_decay: float
    val_every: int
    pretrain_steps: int = 0  # supervised steps on the backbone before episodic training


PRETRAIN_BATCH = 128  # items per supervised pretraining step, classes drawn uniformly


def train(method: FewShotMethod, inputs: ItemInputs, sampler: episodes_lib.EpisodeSampler,
          cfg: TrainConfig, val_table: pd.DataFrame, seed: int,
          log: Callable[[dict, int], None], resume: Resume | None = None) -> tuple[dict, float, int]:
    """Pretrain the backbone if asked (`pretrain`), let the method observe the training items, train
    on sampled episodes; keep the state with the best val-episode accuracy. With `resume`, a
    checkpoint at every val check, and a run that finds one goes on from it (`fewshot.models.resume`).

    Returns:
        (best state dict, its val accuracy, the episode it was reached at; 0 = before episodic
        training: untrained, or only pretrained).
    """
    item_ids = [*sampler.item_ids, *val_table["item_id"]]
    with fixed_front_applied_once(method, inputs, item_ids) as prepared:
        result = _train(method, prepared, sampler, cfg, val_table, seed, log, resume)
    if resume:
        resume.finish()
    return result


@contextmanager
def fixed_front_applied_once(method: FewShotMethod, inputs: ItemInputs, item_ids
                             ) -> Iterator[ItemInputs]:
    """A trainable backbone whose first step has no parameters and the same output in train and
    eval mode (it names that submodule `fixed_front`, e.g. the light-curve CNN's time grid): that
    step is computed once per item, not once per episode, and the backbone skips it meanwhile (put
    back on exit). Per item the same operations as in an episode's batch: identical results."""
    backbone = method.backbone
    name = getattr(backbone, "fixed_front", None)
    if name is None:
        yield inputs
        return
    front = getattr(backbone, name)
    with torch.no_grad():
        prepared = inputs.encoded(front, item_ids)
    setattr(backbone, name, nn.Identity())
    try:
        yield prepared
    finally:
        setattr(backbone, name, front)


def _train(method: FewShotMethod, inputs: ItemInputs, sampler: episodes_lib.EpisodeSampler,
           cfg: TrainConfig, val_table: pd.DataFrame, seed: int,
           log: Callable[[dict, int], None], resume: Resume | None) -> tuple[dict, float, int]:
    saved = resume.load() if resume else None
    if cfg.pretrain_steps and not saved:  # a checkpoint holds the pretrained backbone
        pretrain(method, inputs, sampler, cfg, np.random.default_rng([seed, 1]), log)
    method.observe(lambda: inputs.of(sampler.item_ids))
    if saved:
        best_acc, best_step, best_state = saved["best_acc"], saved["best_step"], saved["best_state"]
    else:
        best_acc, best_step = mean_accuracy(score(method, inputs, val_table)), 0
        best_state = copy.deepcopy(method.state_dict())
        log({"val_accuracy": best_acc}, 0)
    trainable = [p for p in method.parameters() if p.requires_grad]
    if cfg.episodes == 0 or not trainable:
        return best_state, best_acc, best_step
    optimiser = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=cfg.episodes)
    rng = np.random.default_rng(seed)
    first = 1
    if saved:
        method.load_state_dict(saved["method"])
        optimiser.load_state_dict(saved["optimiser"])
        schedule.load_state_dict(saved["schedule"])
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        first = saved["step"] + 1
        print(f"resuming training at episode {first} of {cfg.episodes} from {resume.path}")
        log({"resumed_at_episode": first}, first - 1)
    losses = []
    for step in progress(range(first, cfg.episodes + 1), "train episodes", initial=first - 1,
                         total=cfg.episodes):
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
            if resume and step < cfg.episodes:
                resume.save({"step": step, "method": method.state_dict(),
                             "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(),
                             "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                             "best_acc": best_acc, "best_step": best_step, "best_state": best_state})
    return best_state, best_acc, best_step


def pretrain(method: FewShotMethod, inputs: ItemInputs, sampler: episodes_lib.EpisodeSampler,
             cfg: TrainConfig, rng: np.random.Generator, log: Callable[[dict, int], None]) -> None:
    """Supervised pretraining of the method's backbone (the "pretrain then meta-train" recipe):
    cross-entropy over all training classes through a linear classifier on the backbone's features,
    `cfg.pretrain_steps` batches of PRETRAIN_BATCH items with classes drawn uniformly (rare classes
    weigh as much as common ones), AdamW with a cosine schedule at the model's lr. The classifier is
    dropped afterwards; heads are left to episodic training.

    Raises:
        UserError: the backbone has nothing to train (frozen or cached features).
    """
    backbone = method.backbone
    trainable = [p for p in backbone.parameters() if p.requires_grad]
    if not trainable:
        raise UserError("pretrain_steps needs a backbone that trains (trained from scratch, or a "
                        "pretrained one with freeze: false)")
    item_ids, labels, classes = sampler.labelled_items()
    x, y = inputs.of(item_ids), torch.tensor(labels)
    by_class = [np.flatnonzero(np.asarray(labels) == c) for c in range(len(classes))]
    backbone.eval()
    with torch.no_grad():
        feature_dim = backbone(x[:1]).shape[1]
    classifier = nn.Linear(feature_dim, len(classes))
    optimiser = torch.optim.AdamW(trainable + list(classifier.parameters()), lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=cfg.pretrain_steps)
    backbone.train()
    losses = []
    for step in progress(range(1, cfg.pretrain_steps + 1), "pretrain steps"):
        picked = rng.integers(len(classes), size=PRETRAIN_BATCH)
        batch = np.array([by_class[c][rng.integers(len(by_class[c]))] for c in picked])
        loss = nn.functional.cross_entropy(classifier(backbone(x[batch])), y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == cfg.pretrain_steps:
            log({"pretrain_loss": float(np.mean(losses))}, step)
            losses = []
