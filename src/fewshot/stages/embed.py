"""Stage `embed`: features of every curated image under each frozen pretrained backbone, and the
text embedding of every class (and of the ImageNet class names, for ConSE).

Usage: python -m fewshot.stages.embed         (run by `dvc repro`, from the repository root)
Params: embed.backbones, embed.batch_size, embed.text_templates
Reads: data/curated/{items,classes}.parquet.
Writes: data/features/<backbone>.safetensors, data/features/text.safetensors.
"""

from __future__ import annotations

import sys

import pandas as pd
import torch

from fewshot import features, paths, text
from fewshot import params as params_lib
from fewshot.backbones import BACKBONES, embed
from fewshot.errors import UserError, one_line_errors
from fewshot.images import decode_batch
from fewshot.tracking import stage_run


@one_line_errors
def main() -> None:
    params = params_lib.load()
    torch.manual_seed(params.seed)
    items = pd.read_parquet(paths.ITEMS, columns=["item_id", "sha256", "image"])
    backbones = {name: BACKBONES.create(name) for name in params.embed.backbones}
    trainable = [name for name, b in backbones.items() if not b.pretrained]
    if trainable:
        raise UserError(f"embed.backbones lists {trainable}, which are trained from scratch and "
                        "cannot be cached; list only pretrained backbones")
    templates = params.embed.text_templates
    text.check_templates(templates)
    images = decode_batch(list(items["image"]))
    with stage_run("embed", params.tracking.experiment) as run:
        run.log_params(params_lib.section(params, "embed"))
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
            feats = embed(backbone.module, images, params.embed.batch_size, desc=f"embed {name}")
            features.save(features.path_for(name), items["item_id"], items["sha256"], feats)
            run.log_metrics({f"{name}_dim": feats.shape[1], f"{name}_items": feats.shape[0]})
            print(f"embed: {name} {tuple(feats.shape)} -> {features.path_for(name)}")


if __name__ == "__main__":
    main()
