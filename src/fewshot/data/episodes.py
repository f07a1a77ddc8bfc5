"""Episodes: N-way K-shot tasks whose support and query items come from different groups.

An episode table has one row per item: `episode_id, role (support|query), label (0..n_way-1),
class_id, item_id`. Evaluation episodes are written once to files and read by every method;
training episodes come from the same sampler on the fly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from fewshot.core.errors import UserError

COLUMNS = ["episode_id", "role", "label", "class_id", "item_id"]


@dataclass(frozen=True)
class EpisodeSpec:
    n_way: int
    n_shot: int
    n_query: int


class EpisodeSampler:
    """Samples episodes from one split; checks up front that the request is possible.

    Args:
        items: rows of one split with `class_id`, `group`, `item_id`.
        spec: ways, shots and queries per class.
        split: the split's name, for error messages.
    """

    def __init__(self, items: pd.DataFrame, spec: EpisodeSpec, split: str):
        self.spec = spec
        # For each class: its groups, each with the item ids in that group.
        self._groups: dict[str, list[list[str]]] = {
            class_id: [list(g["item_id"]) for _, g in rows.groupby("group", sort=True)]
            for class_id, rows in items.groupby("class_id", sort=True)
        }
        self._classes = sorted(self._groups)
        self.item_ids = sorted(items["item_id"])
        self._raise_if_infeasible(split)

    def _raise_if_infeasible(self, split: str) -> None:
        spec = self.spec
        if min(spec.n_way, spec.n_shot, spec.n_query) < 1:
            raise UserError(f"n_way={spec.n_way}, n_shot={spec.n_shot}, n_query={spec.n_query} "
                            "must all be >= 1")
        if spec.n_way > len(self._classes):
            raise UserError(f"n_way={spec.n_way} is larger than the {len(self._classes)} classes "
                            f"of split '{split}'")
        need = spec.n_shot + spec.n_query
        for class_id in self._classes:
            have = len(self._groups[class_id])
            if have < need:
                raise UserError(
                    f"n_shot + n_query = {need} but class '{class_id}' of split '{split}' has "
                    f"{have} groups (support and query must come from different groups)"
                )

    def labelled_items(self) -> tuple[list[str], list[int], list[str]]:
        """Every item of the split with the index of its class (classes in sorted order), and the
        classes: what supervised pretraining classifies."""
        pairs = [(item, index) for index, class_id in enumerate(self._classes)
                 for group in self._groups[class_id] for item in group]
        return [item for item, _ in pairs], [index for _, index in pairs], list(self._classes)

    def sample(self, rng: np.random.Generator) -> list[tuple[str, int, str, str]]:
        """One episode as (role, label, class_id, item_id) rows, support rows first."""
        spec = self.spec
        classes = rng.choice(len(self._classes), size=spec.n_way, replace=False)
        support, query = [], []
        for label, class_index in enumerate(classes):
            class_id = self._classes[class_index]
            groups = self._groups[class_id]
            chosen = rng.choice(len(groups), size=spec.n_shot + spec.n_query, replace=False)
            picks = [groups[g][rng.integers(len(groups[g]))] for g in chosen]
            support += [("support", label, class_id, item) for item in picks[: spec.n_shot]]
            query += [("query", label, class_id, item) for item in picks[spec.n_shot :]]
        return support + query


def sample_table(sampler: EpisodeSampler, n_episodes: int, seed: int) -> pd.DataFrame:
    """`n_episodes` episodes as one table; the same seed always gives the same table."""
    rng = np.random.default_rng(seed)
    rows = [(episode, *row) for episode in range(n_episodes) for row in sampler.sample(rng)]
    return pd.DataFrame(rows, columns=COLUMNS)


def table_hash(table: pd.DataFrame) -> str:
    """A content hash of an episode table, independent of the file format that stores it."""
    return hashlib.sha256(table[COLUMNS].to_csv(index=False).encode()).hexdigest()


def iter_episodes(table: pd.DataFrame):
    """Yield (support rows, query rows) per episode, in episode order."""
    for _, rows in table.groupby("episode_id", sort=True):
        yield split_roles(rows)


def split_roles(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(support rows, query rows) of one episode."""
    return rows[rows["role"] == "support"], rows[rows["role"] == "query"]


@dataclass(frozen=True)
class Layout:
    """Every episode of a table as arrays (E episodes, one shape): item ids and labels of the
    support (E, N_s) and query (E, N_q) rows, each role in the table's row order as
    `iter_episodes` yields them, and the class of each label (E, n_way). Built once per file, so
    that scoring gathers all episodes' inputs in a few indexing operations."""

    support_items: np.ndarray
    support_labels: np.ndarray
    query_items: np.ndarray
    query_labels: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.support_items)

    def __getitem__(self, episodes: slice) -> Layout:
        return Layout(*(getattr(self, f.name)[episodes] for f in fields(self)))


def layout(table: pd.DataFrame) -> Layout | None:
    """The table's episodes as a `Layout`, or None when they differ in shape (support or query
    size, ways, or shots per class): such episodes are scored one by one."""
    episode = table["episode_id"].to_numpy()
    is_query = (table["role"] == "query").to_numpy()
    order = np.lexsort((is_query, episode))  # stable: within a role, the table's row order
    episode, is_query = episode[order], is_query[order]
    ids, per_episode = np.unique(episode, return_counts=True)
    n_query = np.bincount(np.searchsorted(ids, episode[is_query]), minlength=len(ids))
    if len(ids) == 0 or len(set(per_episode)) > 1 or len(set(n_query)) > 1 or n_query[0] == 0 \
            or n_query[0] == per_episode[0]:
        return None
    n_support = int(per_episode[0] - n_query[0])
    items = table["item_id"].to_numpy()[order].reshape(len(ids), -1)
    labels = table["label"].to_numpy()[order].reshape(len(ids), -1).astype(np.int64)
    classes = table["class_id"].to_numpy()[order].reshape(len(ids), -1)
    support_labels = labels[:, :n_support]
    n_way = int(support_labels.max()) + 1
    by_label = np.argsort(support_labels, axis=1, kind="stable")
    grouped = np.take_along_axis(support_labels, by_label, axis=1)
    if n_support % n_way or (grouped != np.repeat(np.arange(n_way), n_support // n_way)).any():
        return None  # not every episode has labels 0..n_way-1 with equal shots
    return Layout(items[:, :n_support], support_labels, items[:, n_support:],
                  labels[:, n_support:],
                  np.take_along_axis(classes[:, :n_support], by_label, axis=1)[:, :: n_support // n_way])


def file_hash(path: Path) -> str:
    """The content hash of an episode file (see `table_hash`)."""
    return table_hash(pd.read_parquet(path))
