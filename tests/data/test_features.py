"""The backbone feature cache (`fewshot.data.features`): rows follow the items asked for, and a cache
that does not match the items is refused with what to do about it."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from fewshot.core.errors import UserError
from fewshot.data import features

BACKBONE = "tiny_backbone"
IDS = ["a", "b", "c", "d"]
SHAS = ["sha-a", "sha-b", "sha-c", "sha-d"]


@pytest.fixture
def cache(tmp_path):
    """A cache of 4 items whose feature row i is [i, 10 i, 100 i], so a row's origin is readable."""
    tensor = torch.tensor([[i, 10.0 * i, 100.0 * i] for i in range(len(IDS))])
    features.save(features.path_for(BACKBONE, tmp_path), IDS, SHAS, tensor)
    return tmp_path, tensor


def _items(ids: list[str], shas: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"item_id": ids, "sha256": shas or [SHAS[IDS.index(i)] for i in ids]})


def test_path_is_named_after_the_backbone(tmp_path):
    assert features.path_for("mobilenet_v2", tmp_path) == tmp_path / "mobilenet_v2.safetensors"


def test_round_trip_returns_rows_in_the_order_of_the_items(cache):
    """Asking for a subset in another order gives exactly those rows, in that order."""
    folder, tensor = cache
    got = features.load_for(_items(["d", "a", "c"]), BACKBONE, folder=folder)
    assert torch.equal(got, tensor[[3, 0, 2]])
    assert got.dtype == tensor.dtype


def test_stale_cache_is_refused(cache):
    """Items whose content hash changed since their features were cached: refuse, naming the
    backbone and how many items, and say to re-run embed."""
    folder, _ = cache
    items = _items(["a", "b", "c"], ["sha-a", "sha-b-edited", "sha-c-edited"])
    with pytest.raises(UserError, match=rf"cached '{BACKBONE}' features are stale for 2 items; "
                                        "re-run the embed stage"):
        features.load_for(items, BACKBONE, folder=folder)


def test_items_missing_from_the_cache_are_refused(cache):
    """Items never embedded: refuse with their count and the first of them, and say to re-run embed."""
    folder, _ = cache
    with pytest.raises(UserError, match=rf"2 items lack cached '{BACKBONE}' features \(first: new1\); "
                                        "re-run the embed stage"):
        features.load_for(_items(["a", "new1", "new2"], ["sha-a", "x", "y"]), BACKBONE, folder=folder)


def test_no_cache_for_the_backbone_is_refused(cache):
    """A backbone embed never cached (another backbone's file exists): say to add it to embed.backbones."""
    folder, _ = cache
    with pytest.raises(UserError, match=r"no cached features for backbone 'other_net' at .*"
                                        r"other_net\.safetensors; add it to its domain's "
                                        r"embed\.backbones") as err:
        features.load_for(_items(["a"]), "other_net", folder=folder)
    assert str(folder) in str(err.value)
