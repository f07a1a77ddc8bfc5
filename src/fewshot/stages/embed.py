"""Stage `embed`: features of every curated item under each frozen pretrained backbone, and the
text embedding of every class (and of the ImageNet class names, for ConSE).

Usage: python -m fewshot.stages.embed         (run by `dvc repro`, from the repository root)
Params: seed, embed.backbones, embed.batch_size, embed.text_templates
Reads: data/curated/{items,classes}.parquet and modality.json.
Writes: data/features/<backbone>.safetensors, data/features/text.safetensors.
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
from fewshot.models.backbones import BACKBONES, embed


@one_line_errors
def main() -> None:
    params = params_lib.load()
    torch.manual_seed(params.seed)
    items = pd.read_parquet(paths.ITEMS, columns=["item_id", "sha256", "content"])
    backbones = {name: BACKBONES.create(name) for name in params.embed.backbones}
    templates = params.embed.text_templates
    modality, _ = curation.curated_kind()
    inputs = modality.decode(list(items["content"]))
    with stage_run("embed", params.tracking.experiment) as run:
        run.log_params(params_lib.section(params, "seed", "embed"))
        classes = pd.read_parquet(paths.CLASSES)
        encoder = text.TextEncoder()
        unused = text.unused_descriptions(classes, templates)
        if unused:
            print(f"embed: warning: {unused}", file=sys.stderr)
        class_text, hashes = text.class_embeddings(encoder, classes, templates)
        imagenet = encoder.encode(text.imagenet_names())
        text.save(text.PATH, classes, class_text, hashes, imagenet, templates)
        print(f"embed: {text.MODEL_NAME} text of {len(classes)} classes x {len(templates)} templates "
              f"and {len(imagenet)} ImageNet names -> {text.PATH}")
        for name, backbone in backbones.items():
            feats = embed(backbone.module, inputs, params.embed.batch_size, desc=f"embed {name}")
            features.save(features.path_for(name), items["item_id"], items["sha256"], feats)
            run.log_metrics({f"{name}_dim": feats.shape[1], f"{name}_items": feats.shape[0]})
            print(f"embed: {name} {tuple(feats.shape)} -> {features.path_for(name)}")


if __name__ == "__main__":
    main()
