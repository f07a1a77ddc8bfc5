"""Stage `train@<method>`: episodic training, best checkpoint by val-episode accuracy.

Usage: python -m fewshot.stages.train METHOD  (run by `dvc repro` as train@METHOD)
Params: seed, n_way, n_shot, n_query, train.*
Reads: data/curated, data/features, data/episodes/val.parquet.
Writes: data/models/<method>/model.pt (trainable state, params, episode hashes); an MLflow run with
per-check train_loss and val_accuracy curves.
"""

from __future__ import annotations

import time

import pandas as pd
import torch

from fewshot import episodes as episodes_lib
from fewshot import models, paths
from fewshot import params as params_lib
from fewshot.errors import UserError, one_line_errors
from fewshot.methods import method_from_argv
from fewshot.tracking import stage_run
from fewshot.training import ItemInputs, TrainConfig, train


@one_line_errors
def main() -> None:
    method_name = method_from_argv("train")
    params = params_lib.load()
    cfg = params.train
    if cfg.episodes < 0 or cfg.val_every < 1 or cfg.val_episodes < 1:
        raise UserError(f"train.episodes={cfg.episodes} must be >= 0, train.val_every={cfg.val_every} "
                        f"and train.val_episodes={cfg.val_episodes} >= 1")
    torch.manual_seed(params.seed)
    spec = models.ModelSpec(method_name, cfg.backbone, cfg.head_dim)
    method, pretrained = models.build(spec, on_features=True)
    items = pd.read_parquet(paths.ITEMS)
    train_items = items[items["split"].isin(["train", "val"])].reset_index(drop=True)
    inputs = ItemInputs(train_items, cfg.backbone, pretrained)
    n_way = min(cfg.train_n_way, (items.loc[items.split == "train", "class_id"].nunique()))
    sampler = episodes_lib.EpisodeSampler(
        items[items["split"] == "train"],
        episodes_lib.EpisodeSpec(n_way, params.n_shot, params.n_query), "train")
    val_table = pd.read_parquet(paths.EPISODES / "val.parquet")
    val_table = val_table[val_table["episode_id"] < cfg.val_episodes]
    hashes = episodes_lib.read_hashes(paths.EPISODES)
    tags = {"method": method_name, "backbone": cfg.backbone, "episodes_hash": hashes["test"]}
    with stage_run(f"train@{method_name}", params.tracking.experiment, tags) as run:
        run.log_params(params_lib.section(params, "seed", "n_way", "n_shot", "n_query", "train"))
        started = time.perf_counter()
        best_state, best_acc, best_step = train(
            method, inputs, sampler,
            TrainConfig(cfg.episodes, cfg.lr, cfg.weight_decay, cfg.val_every),
            val_table, params.seed, log=lambda metrics, step: run.log_metrics(metrics, step=step))
        method.load_state_dict(best_state)
        seconds = time.perf_counter() - started
        info = {"params": params_lib.section(params, "seed", "n_way", "n_shot", "n_query", "train"),
                "episodes_hash": hashes["test"], "val_episodes_hash": hashes["val"],
                "best_val_accuracy": best_acc, "best_step": best_step, "train_n_way": n_way}
        models.save(paths.model_file(method_name), method, spec, pretrained, info)
        run.log_metrics({"best_val_accuracy": best_acc, "best_step": best_step,
                         "train_seconds": seconds})
        print(f"train@{method_name}: best val accuracy {best_acc:.4f} at episode {best_step} "
              f"({seconds:.0f} s) -> {paths.model_file(method_name)}")


if __name__ == "__main__":
    main()
