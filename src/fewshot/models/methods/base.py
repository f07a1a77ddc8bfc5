"""The protocol every method follows: `process_support_set(...)`, then `forward(query) -> logits`.

Training and evaluation only ever call these methods (and `observe`, once, on the training split),
so neither branches on a method's name:
- `process_support_set(support, labels, class_text)` remembers what an episode's support set (and
  the text embeddings of its classes, label order) tells; a method may ignore either;
- `forward(query)` gives logits (N_q, n_way);
- `loss(episode)` is the training objective on one sampled episode (cross-entropy of the episode's
  logits unless a method trains otherwise, e.g. on pairs or with a contrastive loss).
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from fewshot.core.errors import UserError


@dataclass
class Episode:
    """One episode's inputs: raw model inputs of its modality (N, ...) or cached backbone features (N, D)."""

    support: torch.Tensor
    support_labels: torch.Tensor  # (N_s,) in 0..n_way-1
    query: torch.Tensor
    query_labels: torch.Tensor  # (N_q,)
    class_text: torch.Tensor  # (n_way, T) text embeddings of the episode's classes, by label


@dataclass
class Episodes:
    """E episodes of one shape, stacked: the fields of `Episode` with a leading episode dimension
    (support labels as in the file: items need not be grouped by label). An item in several
    episodes is stored once, in `items`; the roles address it by row, so a per-item function
    (`map`: a head, an encoder) runs once per distinct item, not once per episode it is in."""

    items: torch.Tensor  # (U, ...) inputs of the distinct items of these episodes
    support_rows: torch.Tensor  # (E, N_s) rows of `items`
    support_labels: torch.Tensor  # (E, N_s)
    query_rows: torch.Tensor  # (E, N_q) rows of `items`
    query_labels: torch.Tensor  # (E, N_q)
    class_text: torch.Tensor  # (E, n_way, T)

    @property
    def support(self) -> torch.Tensor:
        """(E, N_s, ...) the support inputs."""
        return self.items[self.support_rows]

    @property
    def query(self) -> torch.Tensor:
        """(E, N_q, ...) the query inputs."""
        return self.items[self.query_rows]

    def map(self, function: Callable[[torch.Tensor], torch.Tensor]) -> Episodes:
        """These episodes with `function` (inputs (U, ...) -> outputs (U, ...)) applied to their
        items, each distinct item once."""
        return dataclasses.replace(self, items=function(self.items))

    def __len__(self) -> int:
        return len(self.support_rows)

    def __getitem__(self, index: int) -> Episode:
        return Episode(self.items[self.support_rows[index]], self.support_labels[index],
                       self.items[self.query_rows[index]], self.query_labels[index],
                       self.class_text[index])


@dataclass
class Parts:
    """What a method is built from."""

    backbone: nn.Module  # inputs -> (N, feature_dim); an identity on cached features
    feature_dim: int
    head_dim: int  # width of the trainable projection; 0 = none
    text_dim: int
    imagenet_classifier: nn.Module | None = None  # features -> ImageNet logits (pretrained only)
    imagenet_text: torch.Tensor | None = None  # (1000, text_dim) ImageNet class-name embeddings


@dataclass(frozen=True)
class NoOptions:
    pass


class FewShotMethod(nn.Module, abc.ABC):
    """A few-shot classifier. Subclasses set `Options` (a frozen dataclass of their own settings)."""

    Options: type = NoOptions

    def __init__(self, parts: Parts, options):
        super().__init__()
        self.check_entry(options, parts.head_dim, parts.imagenet_classifier is not None)
        self.backbone = parts.backbone
        self.options = options

    @classmethod
    def check_entry(cls, options, head_dim: int, has_imagenet_classifier: bool) -> None:
        """Raise `UserError` when a `models` entry cannot build this method (rules that need more
        than the options alone). The `check` stage calls it for every entry, before any training."""
        if head_dim < 0:
            raise UserError(f"head_dim {head_dim} must be >= 0 (0 = no trainable projection)")

    @abc.abstractmethod
    def process_support_set(self, support: torch.Tensor, labels: torch.Tensor,
                            class_text: torch.Tensor) -> None:
        """Remember the support set (N_s, ...) with labels (N_s,) and class texts (n_way, T)."""

    @abc.abstractmethod
    def forward(self, query: torch.Tensor) -> torch.Tensor:
        """Logits (N_q, n_way) for query inputs (N_q, ...)."""

    def batch_logits(self, episodes: Episodes) -> torch.Tensor:
        """Logits (E, N_q, n_way) of E episodes of one shape, each as `process_support_set` then
        `forward` would give them (to float rounding). This default scores them one by one; a
        method whose per-episode work is a few tensor operations overrides it with those
        operations over the episode dimension (what scoring 1,000 test episodes runs)."""
        logits = []
        for index in range(len(episodes)):
            episode = episodes[index]
            self.process_support_set(episode.support, episode.support_labels, episode.class_text)
            logits.append(self(episode.query))
        return torch.stack(logits)

    def observe(self, training_inputs: Callable[[], torch.Tensor]) -> None:
        """Learn what needs no gradient from the training split's inputs (N, ...; built only when
        called), once, before training (e.g. feature statistics). Default: nothing."""

    def loss(self, episode: Episode) -> torch.Tensor:
        """Training loss on one episode: cross-entropy of its query logits."""
        self.process_support_set(episode.support, episode.support_labels, episode.class_text)
        return nn.functional.cross_entropy(self(episode.query), episode.query_labels)


def projection(in_dim: int, out_dim: int) -> nn.Module:
    """The trainable head: a linear map to `out_dim`, or nothing when `out_dim` is 0."""
    return nn.Linear(in_dim, out_dim) if out_dim > 0 else nn.Identity()


def class_means(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(n_way, D) mean embedding of each label 0..n_way-1."""
    n_way = int(labels.max()) + 1
    return torch.stack([embeddings[labels == c].mean(0) for c in range(n_way)])


def batched_class_means(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(E, n_way, D) mean embedding of each label, for embeddings (E, N_s, D) whose labels (E, N_s)
    hold 0..n_way-1 equally often (what `episodes.layout` admits); `class_means` per episode."""
    return by_label(embeddings, labels, dim=1).mean(2)


def by_label(values: torch.Tensor, labels: torch.Tensor, dim: int) -> torch.Tensor:
    """`values` with its support dimension `dim` (size N_s, labels (E, N_s) as in
    `batched_class_means`) split into (n_way, shots): label by label, each in its original order."""
    n_way = int(labels.max()) + 1
    order = labels.argsort(dim=1, stable=True)
    shape = [1] * values.dim()
    shape[0], shape[dim] = order.shape
    index = order.reshape(shape).expand(*values.shape[:dim], order.shape[1], *values.shape[dim + 1:])
    return values.gather(dim, index).unflatten(dim, (n_way, -1))


def per_item(function: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
    """`function` (items (N, ...) -> (N, ...)) applied to inputs (E, N, ...) of E episodes at once."""
    return function(inputs.flatten(0, 1)).unflatten(0, inputs.shape[:2])


def require(value: torch.Tensor | None) -> torch.Tensor:
    if value is None:
        raise RuntimeError("call process_support_set before forward")
    return value
