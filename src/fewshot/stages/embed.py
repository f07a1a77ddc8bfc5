"""Stage `embed@<domain>`: features of every curated item of a domain under each of its frozen
(pretrained or fixed) backbones, and the text embedding of every class (and of the ImageNet class
names, for ConSE).

Usage: python -m fewshot.stages.embed DOMAIN  (run by `dvc repro` as embed@DOMAIN)
Params: seed, domains.DOMAIN.embed (backbones, batch_size, text_templates, runtime: torch | onnx)
Reads: data/<domain>/curated/{items,classes}.parquet and modality.json.
Writes: data/<domain>/features/<backbone>.safetensors and text.safetensors.
Several processes: under `torchrun --nproc_per_node N` each rank decodes and embeds every N-th item;
rank 0 gathers them in order, embeds the texts, writes and records.
"""

from __future__ import annotations

import sys

import pandas as pd
import torch

from fewshot.core import params as params_lib
from fewshot.core import paths
from fewshot.core.errors import one_line_errors
from fewshot.core.tracking import stage_run
from fewshot.data import curation, features, text
from fewshot.models import distributed
from fewshot.models.backbones import BACKBONES, embed
from fewshot.stages.argv import domain_from_argv


@one_line_errors
def main() -> None:
    params = params_lib.load()
    domain = domain_from_argv("embed", params.domains)
    cfg, where = params.domains[domain].embed, paths.Domain(domain)
    torch.manual_seed(params.seed)
    items = pd.read_parquet(where.items, columns=["item_id", "sha256", "content"])
    backbones = {name: BACKBONES.create(name) for name in cfg.backbones}
    templates = cfg.text_templates
    modality, _ = curation.curated_kind(where.kind)
    with (distributed.world() as world,
          stage_run(f"embed@{domain}", params.tracking.experiment, {"domain": domain},
                    record=world.is_main) as run):
        run.log_params(params_lib.section(params, "seed", f"domains.{domain}.embed"))
        inputs = modality.decode(list(items["content"].iloc[world.shard(len(items))]))
        for name, backbone in backbones.items():
            part, used = features_of(backbone.module, inputs, cfg.batch_size, cfg.runtime, name)
            feats = world.in_order(part, len(items))
            if not world.is_main:
                continue
            features.save(features.path_for(name, where.features), items["item_id"], items["sha256"],
                          feats)
            run.log_metrics({f"{name}_dim": feats.shape[1], f"{name}_items": feats.shape[0]})
            run.log_params({f"{name}_runtime": used})
            print(f"embed@{domain}: {name} {tuple(feats.shape)} ({used}) -> "
                  f"{features.path_for(name, where.features)}")
        if not world.is_main:
            return
        classes = pd.read_parquet(where.classes)
        encoder = text.TextEncoder()
        unused = text.unused_descriptions(classes, templates)
        if unused:
            print(f"embed@{domain}: warning: {unused}", file=sys.stderr)
        class_text, hashes = text.class_embeddings(encoder, classes, templates)
        imagenet = encoder.encode(text.imagenet_names())
        text.save(where.text, classes, class_text, hashes, imagenet, templates)
        print(f"embed@{domain}: {text.MODEL_NAME} text of {len(classes)} classes x {len(templates)} "
              f"templates and {len(imagenet)} ImageNet names -> {where.text}")


def features_of(module, inputs, batch_size: int, runtime: str, name: str) -> tuple[torch.Tensor, str]:
    """(features, the runtime that computed them): ONNX Runtime when asked and the backbone
    exports, else PyTorch (a backbone that does not export says so and is computed by PyTorch)."""
    if runtime == "onnx":
        from fewshot.models.backbones import runtime as onnx_runtime

        try:
            return onnx_runtime.embed(module, inputs, batch_size, desc=f"embed {name} (onnx)"), "onnx"
        except Exception as err:  # noqa: BLE001  (an exporter failure of any type: PyTorch can)
            print(f"embed: {name} does not export to ONNX ({type(err).__name__}); computed by "
                  "PyTorch", file=sys.stderr)
    return embed(module, inputs, batch_size, desc=f"embed {name}"), "torch"


if __name__ == "__main__":
    main()
