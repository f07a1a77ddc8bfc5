"""Model inputs of curated items: cached features, or stored items decoded by their modality (a
backbone trained from scratch or fine-tuned trains on these; they once crashed train@ and
evaluate@ for every unfrozen backbone)."""

from __future__ import annotations

import hashlib

import pandas as pd
import torch

from fewshot.data import text
from fewshot.data.episodes import EpisodeSampler, EpisodeSpec, sample_table
from fewshot.data.inputs import ItemInputs
from fewshot.data.text import TextFeatures
from fewshot.modalities import image as images
from fewshot.modalities import modality_of
from fewshot.models import checkpoint
from fewshot.models.training import TrainConfig, train
from fewshot.tools.shapes import draw_item
from tests.conftest import repo_params


def _items() -> pd.DataFrame:
    rows = []
    for c in range(6):
        for g in range(3):
            png = images.to_png(images.on_white_square(draw_item(c, g), 32))
            rows.append({"item_id": f"c{c}/g{g}", "class_id": f"c{c}", "group": f"g{g}", "content": png,
                         "sha256": hashlib.sha256(png).hexdigest()})
    return pd.DataFrame(rows)


def _text(tmp_path) -> TextFeatures:
    classes = pd.DataFrame({"class_id": [f"c{c}" for c in range(6)]})
    text.save(tmp_path / "text.safetensors", classes, torch.randn(6, 384), ["x"] * 6,
              torch.zeros(1, 384), ["{name}"])
    return TextFeatures(tmp_path / "text.safetensors")


def test_raw_inputs_are_the_modalitys_decoding_in_item_order(tmp_path):
    items = _items()
    inputs = ItemInputs(items, "conv4", False, _text(tmp_path), modality_of("image"), None)
    assert inputs.tensor.shape == (18, 3, 32, 32) and inputs.tensor.dtype == torch.uint8
    rows = items.iloc[[4, 0]].assign(label=[0, 1], role="support")
    episode = inputs.episode(rows, rows)
    decoded = torch.from_numpy(images.decode_batch([items.loc[4, "content"]])[0])
    assert torch.equal(episode.support[0], decoded)


def test_a_backbone_trained_from_scratch_trains_on_decoded_items(tmp_path):
    items = _items()
    entry = repo_params({"p": {"method": "protonet", "backbone": "conv4", "head_dim": 8}}).models["p"]
    torch.manual_seed(0)
    method, frozen = checkpoint.build(entry, on_features=False, text_dim=384)
    assert not frozen
    inputs = ItemInputs(items, "conv4", frozen, _text(tmp_path), modality_of("image"), None)
    sampler = EpisodeSampler(items, EpisodeSpec(3, 1, 1), "train")
    val = sample_table(sampler, 4, seed=1)
    before = [p.detach().clone() for p in method.parameters()]
    logged = []
    train(method, inputs, sampler, TrainConfig(6, 1e-3, 0.0, 3), val, 0, lambda m, s: logged.append(s))
    assert logged == [0, 3, 6]
    assert any(not torch.equal(a, b) for a, b in zip(before, method.parameters(), strict=True))
