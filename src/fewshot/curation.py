"""Curation rules: normalise every image, keep classes with enough designs, split by class."""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from fewshot.images import normalise
from fewshot.progress import progress


def build_items(manifest: pd.DataFrame, raw_dir: Path, image_size: int, workers: int = 2) -> pd.DataFrame:
    """One row per image: manifest columns + `item_id`, normalised PNG `image` and its `sha256`."""
    paths = [raw_dir / p for p in manifest["path"]]
    render = partial(normalise, size=image_size)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        images = list(progress(pool.map(render, paths, chunksize=32), "normalise images", len(paths)))
    items = manifest.drop(columns=["path"]).fillna("").copy()
    items.insert(0, "item_id", items["class_id"] + "/" + items["design"])
    items["image"] = images
    items["sha256"] = [hashlib.sha256(png).hexdigest() for png in images]
    return items


def keep_classes_with_designs(items: pd.DataFrame, min_designs: int) -> pd.DataFrame:
    """Drop classes drawn in fewer than `min_designs` distinct designs.

    >>> frame = pd.DataFrame({"class_id": ["a", "a", "b"], "design": ["x", "y", "x"]})
    >>> keep_classes_with_designs(frame, 2)["class_id"].tolist()
    ['a', 'a']
    """
    designs = items.groupby("class_id")["design"].transform("nunique")
    return items[designs >= min_designs].reset_index(drop=True)


def assign_splits(class_ids: list[str], val_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, str]:
    """Class-disjoint splits: a seeded permutation of the sorted class ids, cut by fractions.

    >>> s = assign_splits(list("abcdefghij"), 0.2, 0.3, seed=0)
    >>> sorted(s.values()).count("test"), sorted(s.values()).count("val")
    (3, 2)
    """
    ordered = sorted(class_ids)
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_test = round(test_fraction * len(ordered))
    n_val = round(val_fraction * len(ordered))
    split_of = {}
    for rank, index in enumerate(order):
        split_of[ordered[index]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return split_of


def class_table(items: pd.DataFrame) -> pd.DataFrame:
    """One row per class: id, name, description, category, subcategory, split, number of items."""
    columns = ["class_id", "class_name", "description", "category", "subcategory", "split"]
    return items.groupby(columns, sort=True).size().rename("n_items").reset_index()


def digest(items: pd.DataFrame) -> str:
    """SHA-256 of what the curated data is: every item's id, class, split and image hash.

    >>> frame = pd.DataFrame({"item_id": ["a/x"], "class_id": ["a"], "split": ["train"], "sha256": ["0f"]})
    >>> digest(frame)[:12]
    'f3c9be901e27'
    """
    rows = items[["item_id", "class_id", "split", "sha256"]].sort_values("item_id")
    text = "\n".join("\t".join(row) for row in rows.itertuples(index=False))
    return hashlib.sha256(text.encode()).hexdigest()
