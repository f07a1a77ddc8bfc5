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
from fewshot.evaluation import metrics
from fewshot.evaluation.scoring import mean_accuracy, score
from fewshot.models.distributed import SINGLE, World
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
          log: Callable[[dict, int], None], resume: Resume | None = None,
          world: World = SINGLE) -> tuple[dict, float, int]:
    """Pretrain the backbone if asked (`pretrain`), let the method observe the training items, train
    on sampled episodes; keep the state with the best val-episode accuracy. With `resume`, a
    checkpoint at every val check, and a run that finds one goes on from it (`fewshot.models.resume`).
    In a `world` of several ranks (torchrun, `fewshot.models.distributed`) each rank samples its own
    episodes, steps on the gradients averaged over the ranks and scores its share of the val
    episodes; every rank returns the same result, rank 0 alone writes the checkpoints.

    Returns:
        (best state dict, its val accuracy, the episode it was reached at; 0 = before episodic
        training: untrained, or only pretrained).
    """
    item_ids = [*sampler.item_ids, *val_table["item_id"]]
    with fixed_front_applied_once(method, inputs, item_ids) as prepared:
        result = _train(method, prepared, sampler, cfg, val_table, seed, log, resume, world)
    if resume and world.is_main:
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
           log: Callable[[dict, int], None], resume: Resume | None, world: World
           ) -> tuple[dict, float, int]:
    saved = resume.load() if resume else None
    # Ranks resume only together (every rank has read before rank 0 may write the next one): one
    # that sees another checkpoint or none (no shared folder across nodes) makes all start afresh.
    if len(set(world.gathered(saved["step"] if saved else None))) > 1:
        saved = None
    trainable = [p for p in method.parameters() if p.requires_grad]
    world.broadcast(trainable)
    world.seed_torch(seed)
    if cfg.pretrain_steps and not saved:  # a checkpoint holds the pretrained backbone
        pretrain(method, inputs, sampler, cfg, world.rng(seed, 1), log, world)
    method.observe(lambda: inputs.of(sampler.item_ids))
    if saved:
        best_acc, best_step, best_state = saved["best_acc"], saved["best_step"], saved["best_state"]
    else:
        best_acc, best_step = val_accuracy(method, inputs, val_table, world), 0
        best_state = copy.deepcopy(method.state_dict())
        log({"val_accuracy": best_acc}, 0)
    if cfg.episodes == 0 or not trainable:
        return best_state, best_acc, best_step
    optimiser = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=cfg.episodes)
    rng = world.rng(seed)
    first = 1
    if saved:
        method.load_state_dict(saved["method"])
        optimiser.load_state_dict(saved["optimiser"])
        schedule.load_state_dict(saved["schedule"])
        rng.bit_generator.state, torch_rng = saved["rng_by_rank"][world.rank]
        torch.set_rng_state(torch_rng)
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
        world.average_gradients(trainable)
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if step % cfg.val_every == 0 or step == cfg.episodes:
            world.broadcast(method.buffers())  # running statistics: rank 0's, the ranks one model
            acc = val_accuracy(method, inputs, val_table, world)
            log({"train_loss": world.mean(float(np.mean(losses))), "val_accuracy": acc}, step)
            losses = []
            if acc > best_acc:
                best_acc, best_step, best_state = acc, step, copy.deepcopy(method.state_dict())
            if resume and step < cfg.episodes:
                rngs = world.gathered((rng.bit_generator.state, torch.get_rng_state()))
                if world.is_main:
                    resume.save({"step": step, "method": method.state_dict(),
                                 "optimiser": optimiser.state_dict(),
                                 "schedule": schedule.state_dict(), "rng_by_rank": rngs,
                                 "best_acc": best_acc, "best_step": best_step,
                                 "best_state": best_state})
    return best_state, best_acc, best_step


def val_accuracy(method: FewShotMethod, inputs: ItemInputs, val_table: pd.DataFrame,
                 world: World = SINGLE) -> float:
    """Mean accuracy over the val episodes; in a world of several ranks each scores every
    `size`-th episode and the accuracies are averaged in episode order (the same float on every
    rank)."""
    if world.size == 1:
        return mean_accuracy(score(method, inputs, val_table))
    ids = np.sort(val_table["episode_id"].unique())
    mine = val_table[val_table["episode_id"].isin(ids[world.shard(len(ids))])]
    accuracies = [metrics.accuracy(r["logits"], r["labels"]) for r in score(method, inputs, mine)]
    return float(np.mean(world.in_order(accuracies, len(ids))))


def pretrain(method: FewShotMethod, inputs: ItemInputs, sampler: episodes_lib.EpisodeSampler,
             cfg: TrainConfig, rng: np.random.Generator, log: Callable[[dict, int], None],
             world: World = SINGLE) -> None:
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
    world.broadcast(classifier.parameters())
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
        world.average_gradients([*trainable, *classifier.parameters()])
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == cfg.pretrain_steps:
            log({"pretrain_loss": world.mean(float(np.mean(losses)))}, step)
            losses = []
