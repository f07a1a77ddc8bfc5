"""The protocol every method follows: `process_support_set(x, y)`, then `forward(query) -> logits`."""

from __future__ import annotations

import abc

import torch
from torch import nn


class FewShotMethod(nn.Module, abc.ABC):
    """A few-shot classifier around an `encoder` (backbone, then a trainable head).

    Args:
        encoder: maps inputs (N, ...) to embeddings (N, D). Inputs are images, or cached backbone
            features when the backbone is frozen (then the encoder's backbone is an identity).
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    @abc.abstractmethod
    def process_support_set(self, support: torch.Tensor, labels: torch.Tensor) -> None:
        """Remember what the support set (N_s, ...) with labels (N_s,) in 0..n_way-1 tells."""

    @abc.abstractmethod
    def forward(self, query: torch.Tensor) -> torch.Tensor:
        """Logits (N_q, n_way) for query inputs (N_q, ...)."""
