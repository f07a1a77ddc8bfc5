"""Prototypical networks (Snell, Swersky & Zemel, NeurIPS 2017)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fewshot.core.errors import UserError
from fewshot.models.methods import METHODS
from fewshot.models.methods.base import FewShotMethod, Parts, class_means, projection, require


@dataclass(frozen=True)
class ProtoOptions:
    distance: str = "squared_euclidean"  # squared_euclidean (the paper's) | cosine

    def __post_init__(self):
        if self.distance not in ("squared_euclidean", "cosine"):
            raise UserError(f"protonet distance '{self.distance}' is not one of "
                            "squared_euclidean, cosine")


@METHODS.register("protonet")
class PrototypicalNetwork(FewShotMethod):
    """Prototype = mean support embedding per class; logits = -scale * distance.

    Squared Euclidean distances are divided by the embedding size D, which keeps the starting scale
    sensible for any head width; the scale is learned (metric scaling, Oreshkin et al. 2018).
    With `head_dim: 0` and no training episodes this is the nearest-prototype baseline on frozen
    pretrained features.
    """

    Options = ProtoOptions

    def __init__(self, parts: Parts, options: ProtoOptions):
        super().__init__(parts, options)
        self.head = projection(parts.feature_dim, parts.head_dim)
        self.log_scale = nn.Parameter(torch.tensor(0.0 if options.distance != "cosine" else 2.3))
        self.prototypes: torch.Tensor | None = None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def process_support_set(self, support, labels, class_text) -> None:
        self.prototypes = class_means(self.embed(support), labels)

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        prototypes, embeddings = require(self.prototypes), self.embed(query)
        if self.options.distance == "cosine":
            similarity = nn.functional.normalize(embeddings, dim=-1) @ \
                nn.functional.normalize(prototypes, dim=-1).T
            return self.log_scale.exp() * similarity
        distances = torch.cdist(embeddings, prototypes).pow(2) / embeddings.shape[1]
        return -self.log_scale.exp() * distances
