"""Stage `train@<model>`: episodic training of one `models` entry, best checkpoint by val accuracy.

Usage: python -m fewshot.stages.train MODEL  (run by `dvc repro` as train@MODEL; MODEL is a key of
params `models`, e.g. protonet, siamese, zero_shot)
Params: seed, n_way, n_shot, n_query, train.*, models.MODEL.*
Reads: data/curated, data/features (images and class texts), data/episodes/val.parquet.
Writes: data/models/<model>/model.pt (trainable state, spec, params, episode hashes); an MLflow run
with per-check train_loss and val_accuracy curves.
"""

from __future__ import annotations

import sys
import time

import pandas as pd
import torch

from fewshot import episodes as episodes_lib
from fewshot import models, paths
from fewshot import params as params_lib
from fewshot.errors import UserError, one_line_errors
from fewshot.methods import model_from_argv
from fewshot.text import TextFeatures
from fewshot.tracking import stage_run
from fewshot.training import ItemInputs, TrainConfig, train


@one_line_errors
def main() -> None:
    params = params_lib.load()
    name = model_from_argv("train", params.models)
    cfg, entry = params.train, params.models[name]
    if entry.episodes < 0 or entry.train_n_way < 2 or cfg.val_every < 1 or cfg.val_episodes < 1:
        raise UserError(f"models.{name}.episodes={entry.episodes} must be >= 0, "
                        f"models.{name}.train_n_way={entry.train_n_way} >= 2, train.val_every="
                        f"{cfg.val_every} and train.val_episodes={cfg.val_episodes} >= 1")
    torch.manual_seed(params.seed)
    text = TextFeatures()
    text.check_current(pd.read_parquet(paths.CLASSES))
    spec = models.ModelSpec.of(entry, text.dim)
    method, frozen = models.build(spec, on_features=True, imagenet_text=text.imagenet)
    items = pd.read_parquet(paths.ITEMS)
    train_items = items[items["split"].isin(["train", "val"])].reset_index(drop=True)
    inputs = ItemInputs(train_items, entry.backbone, frozen, text)
    n_train_classes = items.loc[items.split == "train", "class_id"].nunique()
    n_way = min(entry.train_n_way, n_train_classes)
    warnings = [] if n_way == entry.train_n_way else [
        f"models.{name}.train_n_way={entry.train_n_way} exceeds the {n_train_classes} training "
        f"classes; trained {n_way}-way"]
    for warning in warnings:
        print(f"train@{name}: warning: {warning}", file=sys.stderr)
    sampler = episodes_lib.EpisodeSampler(
        items[items["split"] == "train"],
        episodes_lib.EpisodeSpec(n_way, params.n_shot, params.n_query), "train")
    val_table = pd.read_parquet(paths.EPISODES / "val.parquet")
    val_table = val_table[val_table["episode_id"] < cfg.val_episodes]
    hashes = episodes_lib.read_hashes(paths.EPISODES)
    tags = {"model": name, "method": entry.method, "backbone": entry.backbone,
            "episodes_hash": hashes["test"]}
    logged = params_lib.section(params, "seed", "n_way", "n_shot", "n_query", "train", f"models.{name}")
    with stage_run(f"train@{name}", params.tracking.experiment, tags) as run:
        run.log_params(logged)
        started = time.perf_counter()
        best_state, best_acc, best_step = train(
            method, inputs, sampler,
            TrainConfig(entry.episodes, entry.lr, cfg.weight_decay, cfg.val_every),
            val_table, params.seed, log=lambda metrics, step: run.log_metrics(metrics, step=step))
        method.load_state_dict(best_state)
        seconds = time.perf_counter() - started
        info = {"model": name, "params": logged, "episodes_hash": hashes["test"],
                "val_episodes_hash": hashes["val"], "best_val_accuracy": best_acc,
                "best_step": best_step, "train_n_way": n_way, "train_seconds": seconds,
                "warnings": warnings}
        models.save(paths.model_file(name), method, spec, frozen, info)
        run.log_metrics({"best_val_accuracy": best_acc, "best_step": best_step,
                         "train_seconds": seconds})
        print(f"train@{name}: best val accuracy {best_acc:.4f} at episode {best_step} "
              f"({seconds:.0f} s) -> {paths.model_file(name)}")


if __name__ == "__main__":
    main()
