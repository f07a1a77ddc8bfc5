"""Curation rules: store every raw file through its modality, keep classes with items in enough
groups, split by class."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from fewshot.core.progress import progress
from fewshot.modalities import Modality, modality_of


def build_items(manifest: pd.DataFrame, raw_dir: Path, modality: Modality, settings,
                workers: int = 2) -> pd.DataFrame:
    """One row per raw file: manifest columns + `item_id`, the stored item `content` (bytes, as
    `modality` stores it) and its `sha256`."""
    paths = [raw_dir / p for p in manifest["path"]]
    store = partial(modality.store, settings=settings)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        stored = list(progress(pool.map(store, paths, chunksize=32), f"store {modality.name} items",
                               len(paths)))
    items = manifest.drop(columns=["path"]).fillna("").copy()
    items.insert(0, "item_id", item_ids(items))
    items["content"] = stored
    items["sha256"] = [hashlib.sha256(data).hexdigest() for data in stored]
    return items


def item_ids(items: pd.DataFrame) -> pd.Series:
    """`class_id/group`, and `class_id/group/<k>` for the k-th of several items of a class in one group.

    >>> item_ids(pd.DataFrame({"class_id": ["a", "a", "a", "b"], "group": ["x", "y", "y", "x"]})).tolist()
    ['a/x', 'a/y/0', 'a/y/1', 'b/x']
    """
    base = items["class_id"] + "/" + items["group"]
    many = base.duplicated(keep=False)
    rank = base.groupby(base).cumcount().astype(str)
    return base.where(~many, base + "/" + rank)


def keep_classes_with_groups(items: pd.DataFrame, min_groups: int) -> pd.DataFrame:
    """Drop classes whose items lie in fewer than `min_groups` distinct groups.

    >>> frame = pd.DataFrame({"class_id": ["a", "a", "b"], "group": ["x", "y", "x"]})
    >>> keep_classes_with_groups(frame, 2)["class_id"].tolist()
    ['a', 'a']
    """
    groups = items.groupby("class_id")["group"].transform("nunique")
    return items[groups >= min_groups].reset_index(drop=True)


def assign_splits(class_ids: list[str], val_fraction: float, test_fraction: float,
                  seed: int, test_classes: list[str] | None = None) -> dict[str, str]:
    """Class-disjoint splits: a seeded permutation of the sorted class ids, cut by fractions;
    `test_classes`, when given, are the test split (then the val fraction is of the others).

    >>> s = assign_splits(list("abcdefghij"), 0.2, 0.3, seed=0)
    >>> sorted(s.values()).count("test"), sorted(s.values()).count("val")
    (3, 2)
    >>> fixed = assign_splits(list("abcde"), 0.25, 0.5, 0, test_classes=["e"])
    >>> sorted(k for k, v in fixed.items() if v != "train")
    ['c', 'e']
    """
    ordered = sorted(set(class_ids) - set(test_classes or []))
    order = np.random.default_rng(seed).permutation(len(ordered))
    if test_classes:
        n_test, n_val = 0, round(val_fraction * len(ordered))
    else:
        n_test, n_val = round(test_fraction * len(ordered)), round(val_fraction * len(ordered))
    split_of = {class_id: "test" for class_id in test_classes or []}
    for rank, index in enumerate(order):
        split_of[ordered[index]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return split_of


def hold_out_groups(items: pd.DataFrame, fraction: float, seed: int) -> pd.Series:
    """Validation by held-out groups: `fraction` of each training class's groups (at least one) moves
    to `val`; the classes stay the training classes. Returns the new split column.

    >>> frame = pd.DataFrame({"class_id": list("aaaab"), "group": list("wxyzw"),
    ...                       "split": ["train"] * 4 + ["test"]})
    >>> hold_out_groups(frame, 0.5, seed=0).tolist()
    ['train', 'train', 'val', 'val', 'test']
    """
    rng = np.random.default_rng(seed)
    held = set()
    training = items[items["split"] == "train"]
    for class_id, rows in training.groupby("class_id", sort=True):
        groups = sorted(rows["group"].unique())
        n = max(1, round(fraction * len(groups)))
        held |= {(class_id, groups[i]) for i in rng.choice(len(groups), size=n, replace=False)}
    moved = [(c, g) in held for c, g in zip(items["class_id"], items["group"], strict=True)]
    return items["split"].where(~pd.Series(moved, index=items.index), "val")


def class_table(items: pd.DataFrame) -> pd.DataFrame:
    """One row per class: id, name, description, category, subcategory, split, number of items."""
    columns = ["class_id", "class_name", "description", "category", "subcategory", "split"]
    return items.groupby(columns, sort=True).size().rename("n_items").reset_index()


def digest(items: pd.DataFrame) -> str:
    """SHA-256 of what the curated data is: every item's id, class, split and content hash.

    >>> frame = pd.DataFrame({"item_id": ["a/x"], "class_id": ["a"], "split": ["train"], "sha256": ["0f"]})
    >>> digest(frame)[:12]
    'f3c9be901e27'
    """
    rows = items[["item_id", "class_id", "split", "sha256"]].sort_values("item_id")
    text = "\n".join("\t".join(row) for row in rows.itertuples(index=False))
    return hashlib.sha256(text.encode()).hexdigest()


def curated_kind(path: Path) -> tuple[Modality, object]:
    """The modality of the curated items and the settings they were stored with."""
    kind = json.loads(Path(path).read_text())
    modality = modality_of(kind["modality"])
    return modality, modality.settings(kind["settings"])
