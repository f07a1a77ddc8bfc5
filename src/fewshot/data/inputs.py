"""Model inputs of curated items, addressed by `item_id`: cached backbone features (from a
domain's features folder), or the items decoded by their modality; and the text embedding of each
class."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from fewshot.data import features
from fewshot.data.episodes import Layout
from fewshot.data.text import TextFeatures
from fewshot.modalities import Modality
from fewshot.models.methods.base import Episode, Episodes


class ItemInputs:
    """Model inputs of items addressed by `item_id` (cached features, or the items decoded by
    `modality`), and the cached text embedding of each class."""

    def __init__(self, items: pd.DataFrame, backbone: str, on_features: bool, text: TextFeatures,
                 modality: Modality, features_folder: Path | None):
        if on_features:
            self.tensor = features.load_for(items, backbone, features_folder)
        else:
            self.tensor = modality.decode(list(items["content"]))
        self._row = {item: i for i, item in enumerate(items["item_id"])}
        self.text = text

    def episode(self, support: pd.DataFrame, query: pd.DataFrame) -> Episode:
        classes = support.drop_duplicates("label").sort_values("label")["class_id"].tolist()
        return Episode(self._take(support), _labels(support), self._take(query), _labels(query),
                       self.text.features[self.text.rows(classes)])

    def episodes(self, layout: Layout) -> Episodes:
        """The inputs of every episode of `layout`, stacked: each distinct item's inputs once."""
        support, query = layout.support_items, layout.query_items
        ids, rows = np.unique(np.concatenate([support.ravel(), query.ravel()]), return_inverse=True)
        rows = torch.from_numpy(rows.astype(np.int64))
        text = self.text.features[self.text.rows(list(layout.classes.ravel()))]
        return Episodes(self.of(list(ids)), rows[: support.size].reshape(support.shape),
                        torch.from_numpy(layout.support_labels), rows[support.size :].reshape(query.shape),
                        torch.from_numpy(layout.query_labels), text.unflatten(0, layout.classes.shape))

    def of(self, item_ids: list[str]) -> torch.Tensor:
        """The model inputs of these items, in this order."""
        return self.tensor[[self._row[i] for i in item_ids]]

    def encoded(self, encode: Callable[[torch.Tensor], torch.Tensor], item_ids: Iterable[str],
                batch_size: int = 256) -> ItemInputs:
        """These items' inputs passed once through `encode` (in batches), addressed the same way:
        scoring 1,000 episodes then encodes each test item once instead of once per episode."""
        ids = list(dict.fromkeys(item_ids))
        raw = self.of(ids)
        out = copy.copy(self)
        out.tensor = torch.cat([encode(raw[s : s + batch_size])
                                for s in range(0, len(ids), batch_size)])
        out._row = {item: i for i, item in enumerate(ids)}
        return out

    def _take(self, rows: pd.DataFrame) -> torch.Tensor:
        return self.of(list(rows["item_id"]))


def _labels(rows: pd.DataFrame) -> torch.Tensor:
    return torch.tensor(rows["label"].to_numpy(), dtype=torch.long)
