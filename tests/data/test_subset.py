"""A smaller benchmark of the same data: `fewshot.data.subset.subset` on a manifest."""

from __future__ import annotations

import pandas as pd

from fewshot.data.subset import subset


def _manifest() -> pd.DataFrame:
    rows = [{"class_id": f"c{c:02d}", "group": f"g{g}", "path": f"c{c:02d}/g{g}/{k}.csv"}
            for c in range(30) for g in range(3 + c % 5) for k in range(2)]
    return pd.DataFrame(rows)


def test_zero_limits_keep_everything():
    manifest = _manifest()
    assert subset(manifest, 0, 0, 2, seed=0, keep=[]).equals(manifest)


def test_subset_is_seeded_keeps_whole_groups_and_the_fixed_test_classes():
    manifest = _manifest()
    small = subset(manifest, max_classes=8, max_groups=4, min_groups=4, seed=3, keep=["c29", "c00"])
    again = subset(manifest, max_classes=8, max_groups=4, min_groups=4, seed=3, keep=["c29", "c00"])
    other = subset(manifest, max_classes=8, max_groups=4, min_groups=4, seed=4, keep=["c29", "c00"])
    assert small.equals(again) and not small.equals(other)
    groups = small.groupby("class_id")["group"].nunique()
    assert len(groups) == 8 and (groups == 4).all()  # at most 4 kept, and only classes with 4
    assert "c29" in groups.index  # 7 groups, a fixed test class: always kept
    assert "c00" not in groups.index  # 3 groups < min_groups: not eligible, even when named
    per_group = small.groupby(["class_id", "group"]).size()
    assert (per_group == 2).all()  # every item of a kept group
