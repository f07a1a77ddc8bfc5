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


def subset(manifest: pd.DataFrame, max_classes: int, max_groups: int, min_groups: int, seed: int,
           keep: list[str]) -> pd.DataFrame:
    """A smaller benchmark of the same data, drawn by `seed` before any file is read: at most
    `max_groups` groups of each class, then at most `max_classes` of the classes that still have
    `min_groups` groups, the classes in `keep` (fixed test classes) always among them. 0 = no limit.

    >>> frame = pd.DataFrame({"class_id": list("aaabbbccd"), "group": list("xyzxyzxyx")})
    >>> small = subset(frame, max_classes=2, max_groups=2, min_groups=2, seed=0, keep=["c"])
    >>> sorted(small["class_id"].unique()), small.groupby("class_id")["group"].nunique().tolist()
    (['a', 'c'], [2, 2])
    """
    rng = np.random.default_rng(seed)
    if max_groups:
        kept = set()
        for class_id, groups in manifest.groupby("class_id", sort=True)["group"]:
            names = sorted(groups.unique())
            picked = names if len(names) <= max_groups else rng.choice(names, max_groups, replace=False)
            kept |= {(class_id, g) for g in picked}
        pairs = zip(manifest["class_id"], manifest["group"], strict=True)
        manifest = manifest[[pair in kept for pair in pairs]]
    if max_classes:
        counts = manifest.groupby("class_id")["group"].nunique()
        eligible = sorted(counts.index[counts >= min_groups])
        forced = [c for c in eligible if c in set(keep)]
        others = [c for c in eligible if c not in set(keep)]
        n = min(len(others), max(0, max_classes - len(forced)))
        chosen = set(forced) | set(rng.choice(others, n, replace=False).tolist() if n else [])
        manifest = manifest[manifest["class_id"].isin(chosen)]
    return manifest.reset_index(drop=True)


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
