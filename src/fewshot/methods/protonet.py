"""Prototypical networks (Snell, Swersky & Zemel, NeurIPS 2017)."""

from __future__ import annotations

import torch
from torch import nn

from fewshot.methods import METHODS
from fewshot.methods.base import FewShotMethod


@METHODS.register("protonet")
class PrototypicalNetwork(FewShotMethod):
    """Prototype = mean support embedding per class; logits = -scale * squared distance / D.

    The scale is learned (metric scaling, Oreshkin et al. 2018); dividing by the embedding size D
    keeps its starting value sensible for any head width.
    """

    def __init__(self, encoder: nn.Module):
        super().__init__(encoder)
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.prototypes: torch.Tensor | None = None

    def process_support_set(self, support: torch.Tensor, labels: torch.Tensor) -> None:
        embeddings = self.encoder(support)
        n_way = int(labels.max()) + 1
        self.prototypes = torch.stack([embeddings[labels == c].mean(0) for c in range(n_way)])

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        if self.prototypes is None:
            raise RuntimeError("call process_support_set before forward")
        embeddings = self.encoder(query)
        distances = torch.cdist(embeddings, self.prototypes).pow(2) / embeddings.shape[1]
        return -self.log_scale.exp() * distances
