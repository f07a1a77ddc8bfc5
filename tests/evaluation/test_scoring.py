"""Batched episode scoring (`scoring.score`) against its reference, episode by episode
(`scoring.score_one_by_one`), for every method, on the synthetic cached features of the training
tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from fewshot.data import episodes as episodes_lib
from fewshot.data.episodes import EpisodeSampler, EpisodeSpec, sample_table
from fewshot.evaluation.scoring import score, score_one_by_one
from fewshot.models.methods import METHODS
from fewshot.models.methods.base import FewShotMethod, Parts
from tests.models.test_training import (  # noqa: F401
    NOISE,
    SIGNAL,
    TEXT_DIM,
    TRAIN_CLASSES,
    _items_and_features,
    setup,  # a fixture
)

FEATURES = SIGNAL + NOISE
VARIANTS = [("protonet", {}), ("protonet", {"distance": "cosine"}),
            ("protonet", {"standardise": True}), ("siamese", {}), ("siamese", {"loss": "binary"}),
            ("zero_shot", {}), ("multimodal", {}), ("conse", {"top_k": 5})]


def _method(name: str, options: dict, seed: int = 0) -> nn.Module:
    """A method with every parameter and buffer randomised (not its initial values: a scale of
    exactly 1 or a zero bias would hide a term the batched path dropped)."""
    torch.manual_seed(seed)
    cls = METHODS.get(name)
    parts = Parts(nn.Identity(), FEATURES, head_dim=8, text_dim=TEXT_DIM,
                  imagenet_classifier=nn.Linear(FEATURES, 1000),
                  imagenet_text=torch.randn(1000, TEXT_DIM))
    method = cls(parts, cls.Options(**options))
    with torch.no_grad():
        for tensor in [*method.parameters(), *method.buffers()]:
            tensor.add_(0.3 * torch.randn_like(tensor))
        if hasattr(method, "feature_scale"):
            method.feature_scale.abs_().add_(0.5)
    return method.eval()


def _shuffled_within_episodes(table, seed: int):
    """The same episodes with their rows in a random order: support items no longer grouped by
    label, support and query rows interleaved, episodes out of order."""
    return table.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.mark.parametrize("n_shot", [1, 3])
@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=[f"{n}{o}" for n, o in VARIANTS])
def test_batched_scoring_equals_episode_by_episode(setup, name, options, n_shot):  # noqa: F811
    """Logits equal to the reference's within 1e-6 or 4 float32 ulps of the episode's largest
    logit, whichever is larger, and the same predicted class for every query, in episode order;
    chunks smaller than the file change nothing. The text methods project every class's text in
    one matrix product where the loop projects an episode's: the kernel picked for the row count
    rounds differently on some CPUs (max |diff| below 1e-6 on an AMD EPYC; 2.9e-6 at logits of
    10 on an Intel Xeon, 3 ulps). ConSE within 2e-5: its 1000-way softmax and top-k mix amplify
    that rounding (observed 7e-6 at scale 10)."""
    inputs, _, _ = setup
    items, _ = _items_and_features()
    sampler = EpisodeSampler(items[items["class_id"] >= f"c{TRAIN_CLASSES:02d}"],
                             EpisodeSpec(5, n_shot, 2), "val")
    table = _shuffled_within_episodes(sample_table(sampler, 30, seed=3), seed=4)
    method = _method(name, options)
    expected = score_one_by_one(method, inputs, table)
    for chunk in (512, 7):
        batched = score(method, inputs, table, chunk=chunk)
        assert len(batched) == len(expected) == 30
        for got, want in zip(batched, expected, strict=True):
            np.testing.assert_array_equal(got["labels"], want["labels"])
            ulps = 4 * np.finfo(np.float32).eps * np.abs(want["logits"]).max()
            tolerance = 2e-5 if name == "conse" else max(1e-6, ulps)
            np.testing.assert_allclose(got["logits"], want["logits"], rtol=0, atol=tolerance)
            np.testing.assert_array_equal(got["logits"].argmax(1), want["logits"].argmax(1))


def test_layout_keeps_each_roles_row_order_and_the_class_of_each_label(setup):  # noqa: F811
    inputs, _, val_table = setup
    table = _shuffled_within_episodes(val_table, seed=0)
    layout = episodes_lib.layout(table)
    pairs = list(episodes_lib.iter_episodes(table))
    assert len(layout) == len(pairs) == 40
    for index, (support, query) in enumerate(pairs):
        assert list(layout.support_items[index]) == list(support["item_id"])
        assert list(layout.query_items[index]) == list(query["item_id"])
        assert list(layout.support_labels[index]) == list(support["label"])
        assert list(layout.query_labels[index]) == list(query["label"])
        by_label = support.drop_duplicates("label").sort_values("label")["class_id"]
        assert list(layout.classes[index]) == list(by_label)
    assert len(layout[5:9]) == 4 and list(layout[5:9].classes[0]) == list(layout.classes[5])


def test_episodes_of_mixed_shapes_are_scored_one_by_one(setup):  # noqa: F811
    """A file whose episodes differ in size (or in shots per class) has no layout; `score` still
    scores it, episode by episode, with the same result as the reference."""
    inputs, _, val_table = setup
    fewer_queries = val_table.drop(val_table.index[(val_table["episode_id"] == 0)
                                                   & (val_table["role"] == "query")][:1])
    uneven_shots = val_table.copy()
    first_support = uneven_shots.index[(uneven_shots["episode_id"] == 0)
                                       & (uneven_shots["role"] == "support")]
    uneven_shots.loc[first_support[0], "label"] = uneven_shots.loc[first_support[1], "label"]
    method = _method("protonet", {})
    for table in (fewer_queries, uneven_shots):
        assert episodes_lib.layout(table) is None
        got, want = score(method, inputs, table), score_one_by_one(method, inputs, table)
        assert len(got) == 40
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a["logits"], b["logits"])


def test_the_default_batch_logits_is_the_episode_protocol(setup):  # noqa: F811
    """A method that does not override `batch_logits` is scored through `process_support_set` and
    `forward`, episode by episode: identical to the reference."""
    inputs, _, val_table = setup
    method = _method("protonet", {})

    class Plain(type(method)):
        batch_logits = FewShotMethod.batch_logits

    plain = Plain(Parts(nn.Identity(), FEATURES, 8, TEXT_DIM), dataclasses.replace(method.options))
    plain.load_state_dict(method.state_dict())
    got, want = score(plain.eval(), inputs, val_table), score_one_by_one(method, inputs, val_table)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a["logits"], b["logits"])
