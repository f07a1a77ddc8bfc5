import numpy as np
import pandas as pd
import pytest

from fewshot.core.errors import UserError
from fewshot.data import episodes


def split_items(n_classes: int, designs: int) -> pd.DataFrame:
    rows = [{"item_id": f"c{c}/d{d}", "class_id": f"c{c}", "group": f"d{d}"}
            for c in range(n_classes) for d in range(designs)]
    return pd.DataFrame(rows)


def test_episode_has_n_way_classes_with_shots_and_queries_from_different_designs():
    sampler = episodes.EpisodeSampler(split_items(8, 4), episodes.EpisodeSpec(5, 2, 2), "test")
    table = episodes.sample_table(sampler, 20, seed=0)
    for _, rows in table.groupby("episode_id"):
        assert rows["class_id"].nunique() == 5
        assert sorted(rows["label"].unique()) == [0, 1, 2, 3, 4]
        for _, per_class in rows.groupby("label"):
            assert (per_class["role"] == "support").sum() == 2
            assert (per_class["role"] == "query").sum() == 2
            assert per_class["item_id"].is_unique  # one design each: support never equals query


def test_same_seed_same_table_and_hash_other_seed_differs():
    sampler = episodes.EpisodeSampler(split_items(10, 3), episodes.EpisodeSpec(3, 1, 1), "val")
    first, again = (episodes.sample_table(sampler, 50, seed=7) for _ in range(2))
    other = episodes.sample_table(sampler, 50, seed=8)
    assert episodes.table_hash(first) == episodes.table_hash(again)
    assert episodes.table_hash(first) != episodes.table_hash(other)


def test_golden_first_episode_for_seed_zero():
    sampler = episodes.EpisodeSampler(split_items(4, 2), episodes.EpisodeSpec(2, 1, 1), "test")
    table = episodes.sample_table(sampler, 1, seed=0)
    rng = np.random.default_rng(0)
    classes = rng.choice(4, size=2, replace=False)
    assert table[table.role == "support"]["class_id"].tolist() == [f"c{c}" for c in classes]
    assert len(table) == 4 and table["role"].tolist() == ["support", "support", "query", "query"]


def test_sampler_raises_when_n_way_exceeds_classes():
    with pytest.raises(UserError, match="n_way=6 is larger than the 5 classes of split 'test'"):
        episodes.EpisodeSampler(split_items(5, 4), episodes.EpisodeSpec(6, 1, 1), "test")


def test_sampler_raises_when_class_has_too_few_designs():
    with pytest.raises(UserError, match=r"n_shot \+ n_query = 5 but class 'c0' of split 'val' has 4 groups"):
        episodes.EpisodeSampler(split_items(5, 4), episodes.EpisodeSpec(2, 3, 2), "val")


def test_sampler_rejects_zero_shots():
    with pytest.raises(UserError, match="must all be >= 1"):
        episodes.EpisodeSampler(split_items(5, 4), episodes.EpisodeSpec(2, 0, 1), "val")


def test_iter_episodes_splits_support_and_query():
    sampler = episodes.EpisodeSampler(split_items(6, 3), episodes.EpisodeSpec(3, 1, 2), "test")
    table = episodes.sample_table(sampler, 3, seed=1)
    pairs = list(episodes.iter_episodes(table))
    assert len(pairs) == 3
    assert all(len(s) == 3 and len(q) == 6 for s, q in pairs)


def test_support_and_query_come_from_different_groups_when_a_group_holds_several_items():
    """Item ids `class/group/<k>`: several items of a class in one group never meet in an episode."""
    rows = [{"item_id": f"c{c}/g{g}/{k}", "class_id": f"c{c}", "group": f"g{g}"}
            for c in range(5) for g in range(3) for k in range(4)]
    items = pd.DataFrame(rows)
    group_of = dict(zip(items["item_id"], items["group"], strict=True))
    sampler = episodes.EpisodeSampler(items, episodes.EpisodeSpec(n_way=3, n_shot=1, n_query=2), "val")
    table = episodes.sample_table(sampler, 50, seed=3)
    for _, rows_ in table.groupby(["episode_id", "class_id"]):
        groups = [group_of[i] for i in rows_["item_id"]]
        assert len(set(groups)) == len(groups) == 3
