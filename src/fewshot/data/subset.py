"""A smaller benchmark of the same data (the CI preset): a seeded subset of a source's manifest,
drawn before curation reads any file. Its own module so that only curate depends on it."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
