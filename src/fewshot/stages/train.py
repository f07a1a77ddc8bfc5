"""Stage `train@<model>`: episodic training of one `models` entry, best checkpoint by val accuracy.

Usage: python -m fewshot.stages.train MODEL  (run by `dvc repro` as train@MODEL; MODEL is a key of
params `models`, e.g. protonet, siamese, zero_shot)
Params: seed, n_shot, train.*, model_defaults, models.MODEL, and of the model's domain D:
domains.D.n_query (training episodes are models.MODEL.train_n_way-way with
models.MODEL.train_n_query queries per class, or the domain's n_query; n_way is the evaluation's)
Reads, of the model's domain: data/D/curated (items, classes, modality), data/D/features (cached
features and class texts), data/D/episodes/val.parquet (model selection; the test episodes are
never read here).
Resumes: a run killed half-way goes on from its last val check (.cache/resume/, fewshot.models.resume).
Several processes: `torchrun --nproc_per_node N -m fewshot.stages.train MODEL` trains on N ranks
(fewshot.models.distributed: own episodes per rank, averaged gradients); rank 0 writes and records.
Writes: data/models/<model>/model.pt, self-contained: trainable state, the `models` entry, and what
inference needs (modality and its settings, backbone input preparation, text model, templates and
class fields), with provenance (params and their hash, val episode hash, data digest); an MLflow
run with per-check train_loss and val_accuracy curves, the datasets it read, and the model as an
MLflow model (tag `model_sha256`: the checkpoint's hash, for `python -m fewshot.gate promote`).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import pandas as pd
import torch

from fewshot.core import params as params_lib
from fewshot.core import paths
from fewshot.core.errors import one_line_errors
from fewshot.core.fileio import sha256_file
from fewshot.core.tracking import stage_run
from fewshot.data import curation, features
from fewshot.data import episodes as episodes_lib
from fewshot.data.inputs import ItemInputs
from fewshot.data.text import TextFeatures
from fewshot.inference.serving import LOGGED_MODEL, requirements
from fewshot.models import checkpoint, distributed
from fewshot.models.resume import Resume, source_digest, tensor_digest
from fewshot.models.training import TrainConfig, train
from fewshot.stages.argv import model_from_argv


def fingerprint(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


@one_line_errors
def main() -> None:
    params = params_lib.load()
    name = model_from_argv("train", params.models)
    cfg, entry = params.train, params.models[name]
    domain_name, domain = params.domain_of(name)
    where = paths.Domain(domain_name)
    torch.manual_seed(params.seed)
    text = TextFeatures(where.text)
    text.check_current(pd.read_parquet(where.classes))
    method, frozen = checkpoint.build(entry, on_features=True, text_dim=text.dim,
                                      imagenet_text=text.imagenet)
    items = pd.read_parquet(where.items)
    modality, settings = curation.curated_kind(where.kind)
    train_items = items[items["split"].isin(["train", "val"])].reset_index(drop=True)
    inputs = ItemInputs(train_items, entry.backbone, frozen, text, modality, where.features)
    n_train_classes = items.loc[items.split == "train", "class_id"].nunique()
    n_way = min(entry.train_n_way, n_train_classes)
    warnings = [] if n_way == entry.train_n_way else [
        f"models.{name}.train_n_way={entry.train_n_way} exceeds the {n_train_classes} training "
        f"classes; trained {n_way}-way"]
    for warning in warnings:
        print(f"train@{name}: warning: {warning}", file=sys.stderr)
    n_query = entry.train_n_query or domain.n_query
    sampler = episodes_lib.EpisodeSampler(
        items[items["split"] == "train"], episodes_lib.EpisodeSpec(n_way, params.n_shot, n_query),
        "train")
    full_val = pd.read_parquet(where.val_episodes)
    val_hash = episodes_lib.table_hash(full_val)
    val_table = full_val[full_val["episode_id"] < cfg.val_episodes]
    tags = {"model": name, "domain": domain_name, "method": entry.method, "backbone": entry.backbone,
            "val_episodes_hash": val_hash}
    logged = params_lib.section(params, "seed", "n_shot", f"domains.{domain_name}.n_query", "train",
                                f"models.{name}")
    with (distributed.world() as world,
          stage_run(f"train@{name}", params.tracking.experiment, tags, record=world.is_main) as run):
        run.log_params(logged)
        data_sha256, inputs_sha256 = curation.digest(items), tensor_digest(inputs.tensor, text.features)
        run.log_inputs([{"name": f"{domain_name}/curated items", "path": where.items,
                         "sha256": data_sha256, "context": "training"},
                        {"name": f"{domain_name}/val episodes", "path": where.val_episodes,
                         "sha256": val_hash, "context": "validation"},
                        *features.logged_inputs(where, entry.backbone if frozen else None, "training")])
        # A run killed half-way (kill -9, OOM, a lost node) goes on from its last val check when
        # rerun with the same inputs, params and code, and ends as if never stopped.
        resume = Resume.of(name, {"params": logged, "n_way": n_way, "n_query": n_query,
                                  "val_episodes_hash": val_hash, "data_sha256": data_sha256,
                                  "inputs_sha256": inputs_sha256, "source_sha256": source_digest(),
                                  "world_size": world.size})
        started = time.perf_counter()
        best_state, best_acc, best_step = train(
            method, inputs, sampler,
            TrainConfig(entry.episodes, entry.lr, cfg.weight_decay, cfg.val_every,
                        entry.pretrain_steps),
            val_table, params.seed, log=lambda metrics, step: run.log_metrics(metrics, step=step),
            resume=resume, world=world)
        method.load_state_dict(best_state)
        seconds = time.perf_counter() - started
        if not world.is_main:
            return
        processes = {"world_size": world.size, "dist_backend": world.backend} if world.size > 1 else {}
        if processes:
            run.set_tags(processes)
        info = {"model": name, "params": logged, "params_sha256": fingerprint(logged),
                "val_episodes_hash": val_hash, "data_sha256": data_sha256,
                "best_val_accuracy": best_acc, "best_step": best_step, "train_n_way": n_way,
                "train_n_query": n_query,
                "train_seconds": seconds, "warnings": warnings, **processes,
                "inference": checkpoint.inference_record(modality.name, modality.settings_dict(settings),
                                                         entry.backbone, text.templates)}
        model_file = paths.model_file(name)
        checkpoint.save(model_file, method, entry, text.dim, frozen, info)
        # The model as MLflow shows it and `python -m fewshot.gate promote` registers it: found by
        # its checkpoint's hash; calibrated and given classes where it is used (fewshot-predict).
        run.set_tags({"model_sha256": sha256_file(model_file)})
        run.log_model(LOGGED_MODEL, {"model": model_file}, requirements(),
                      {"name": name, "threshold": 0.0, "runtime": "torch"})
        run.log_metrics({"best_val_accuracy": best_acc, "best_step": best_step,
                         "train_seconds": seconds})
        print(f"train@{name}: best val accuracy {best_acc:.4f} at episode {best_step} "
              f"({seconds:.0f} s) -> {paths.model_file(name)}")


if __name__ == "__main__":
    main()
