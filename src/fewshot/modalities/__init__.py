"""The seam between kinds of data and the rest of the pipeline.

A modality owns everything that knows what an item *is*; episodes, methods, training, scoring,
calibration, the gate, tracking and the report see only item ids, groups, labels, tensors and
logits. An entry of `MODALITIES` says:
- how a raw file becomes a stored item (`store`: bytes in the curated table) and back into a
  batch of model inputs (`decode`), with the expectations stored items must meet (`columns`,
  `expectations`: Great Expectations rules on per-item derived columns);
- how a user's raw file becomes one model input at inference (`read`: fewshot-predict, serving,
  latency from raw inputs), how several become a batch (`collate`), and what a neutral input
  looks like (`blank`, for probing a support set);
- which files it reads (`suffixes`) and what the serving interface accepts (`payload`);
- its settings (`Settings`, from params `domains.<domain>.settings`), recorded in every trained
  model.
Encoders say which modality they take (`fewshot.models.backbones.Backbone.modality`).

Adding a kind of data = a source (`fewshot.data.sources`) + an entry here + params; see
docs/architecture.md.
"""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fewshot.core.registry import Registry

if TYPE_CHECKING:
    import torch  # imported by `decode` only: ingest, curate and episodes never make tensors

MODALITIES = Registry("modality")


class Modality(abc.ABC):
    """One kind of data. Subclasses set `name`, `Settings` (a frozen dataclass), `suffixes` and
    `payload`, and implement the methods below; instances are stateless."""

    name: str
    Settings: type
    suffixes: frozenset[str]
    payload: str  # the serving input column holding one raw file, base64-encoded
    varying_axes: tuple[int, ...] = ()  # axes of a batch, besides the first, whose size varies

    def settings(self, raw: dict | None, prefix: str | None = None) -> object:
        """Typed settings from params `domains.<domain>.settings` (unknown keys and bad values
        refused, named under `prefix`)."""
        from fewshot.core.params import from_dict

        return from_dict(raw or {}, self.Settings, prefix=prefix or f"{self.name}.settings.")

    def settings_dict(self, settings: object) -> dict:
        return dataclasses.asdict(settings)

    @abc.abstractmethod
    def store(self, path: Path, settings) -> bytes:
        """A raw file -> the stored item (curate). Raises `UserError` naming an unreadable file."""

    @abc.abstractmethod
    def decode(self, stored: list[bytes]) -> torch.Tensor:
        """Stored items -> one batch of model inputs (N, ...)."""

    @abc.abstractmethod
    def columns(self, stored: bytes | None) -> dict:
        """Derived per-item columns that `expectations` check (None: an item that is missing)."""

    @abc.abstractmethod
    def expectations(self, gx, settings) -> list:
        """Great Expectations rules on the columns of `columns`."""

    @abc.abstractmethod
    def read(self, path: Path, settings) -> np.ndarray:
        """A user's raw file -> one model input, prepared exactly as `store` + `decode` would.
        Raises `UserError` naming the file."""

    @abc.abstractmethod
    def blank(self, settings) -> np.ndarray:
        """A batch of one neutral input, as `collate([one input of read])` is."""

    def collate(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Inputs of `read` -> one batch (N, ...) (light curves of different lengths are padded)."""
        return np.stack(inputs)

    @abc.abstractmethod
    def verify(self, path: Path) -> None:
        """Refuse a raw file this modality cannot read, cheaply (ingest of a user's folder)."""


def modality_of(name: str) -> Modality:
    return MODALITIES.create(name)


from fewshot.modalities import image, light_curve  # noqa: E402,F401  (registers the modalities)
