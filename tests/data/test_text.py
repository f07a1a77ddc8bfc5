"""Class prompts, the offline all-MiniLM-L6-v2 encoder, and the text-embedding cache."""

import pandas as pd
import pytest
import torch

from fewshot.core import params
from fewshot.core.errors import UserError
from fewshot.data import text

TEMPLATES = ["an emoji of {name}", "{name}, a {subcategory} emoji"]


@pytest.fixture(scope="module")
def encoder():
    return text.TextEncoder()


def classes(**changes) -> pd.DataFrame:
    frame = pd.DataFrame({"class_id": ["1f34e", "1f680"], "class_name": ["red apple", "rocket"],
                          "category": ["Food & Drink", "Travel & Places"],
                          "subcategory": ["food-fruit", ""], "description": ["", ""]})
    for column, values in changes.items():
        frame[column] = values
    return frame


def test_templates_with_unknown_fields_or_without_a_name_only_template_are_rejected():
    with pytest.raises(UserError, match=r"unknown field\(s\) \['colour'\]; valid fields: name"):
        text.check_templates(["{name} in {colour}"])
    with pytest.raises(UserError, match="one template using only {name}"):
        text.check_templates(["{name} ({category})"])
    text.check_templates(TEMPLATES)


def test_encoder_gives_unit_384d_vectors_that_rank_related_texts_closer(encoder):
    vectors = encoder.encode(["an emoji of a red apple", "a green apple", "a space rocket"])
    assert vectors.shape == (3, 384) and torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_batching_does_not_change_embeddings(encoder):
    texts = ["a", "a much longer sentence about a smiling face", "rocket"]
    assert torch.allclose(encoder.encode(texts, batch_size=1), encoder.encode(texts), atol=1e-5)


def test_class_embedding_averages_only_the_templates_a_class_can_fill(encoder):
    table = classes()
    embeddings, _ = text.class_embeddings(encoder, table, TEMPLATES)
    rocket_alone = encoder.encode(["an emoji of rocket"])[0]  # no subcategory: one prompt
    assert torch.allclose(embeddings[1], rocket_alone, atol=1e-5)
    apple = encoder.encode(["an emoji of red apple", "red apple, a food fruit emoji"]).mean(0)
    assert torch.allclose(embeddings[0], torch.nn.functional.normalize(apple, dim=0), atol=1e-5)


def test_cache_round_trip_and_stale_prompts_are_refused(encoder, tmp_path):
    table = classes()
    embeddings, hashes = text.class_embeddings(encoder, table, TEMPLATES)
    path = tmp_path / "text.safetensors"
    text.save(path, table, embeddings, hashes, torch.zeros(1000, 384), TEMPLATES)
    cached = text.TextFeatures(path)
    cached.check_current(table)
    assert torch.equal(cached.features[cached.rows(["1f680"])], embeddings[[1]])
    with pytest.raises(UserError, match="class '1f680' is stale"):
        cached.check_current(classes(class_name=["red apple", "space rocket"]))
    with pytest.raises(UserError, match="1 classes lack cached text embeddings"):
        cached.rows(["1f600"])


def test_imagenet_names_are_the_thousand_classes_in_index_order():
    names = text.imagenet_names()
    assert len(names) == 1000 and names[0] == "tench" and names[999] == "toilet paper"


def test_equal_embeddings_give_byte_identical_cache_files(encoder, tmp_path):
    table = classes()
    embeddings, hashes = text.class_embeddings(encoder, table, TEMPLATES)
    for name in ("a", "b"):
        text.save(tmp_path / name, table, embeddings, hashes, torch.zeros(1000, 384), TEMPLATES)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()  # DVC sees no change


@pytest.mark.parametrize("domain", ["images", "light_curves"])
def test_a_class_description_reaches_its_text_embedding_with_the_default_templates(encoder, domain):
    """Replacing every description with nonsense once left every zero-shot probability unchanged."""
    templates = params.load("params.yaml").domains[domain].embed.text_templates
    described = classes(description=["a round fruit, crisp and sweet", "a vehicle that flies to space"])
    nonsense = classes(description=["qwerty zxcv", "lorem ipsum"])
    assert "red apple: a round fruit, crisp and sweet" in text.class_prompts(described.iloc[0], templates)
    first, _ = text.class_embeddings(encoder, described, templates)
    second, _ = text.class_embeddings(encoder, nonsense, templates)
    assert (first - second).abs().max() > 0.01
    assert text.unused_descriptions(described, templates) is None
    assert "not used" in text.unused_descriptions(described, ["{name}"])
