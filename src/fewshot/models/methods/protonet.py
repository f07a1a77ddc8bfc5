"""Prototypical networks (Snell, Swersky & Zemel, NeurIPS 2017)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fewshot.core.errors import UserError
from fewshot.models.methods import METHODS
from fewshot.models.methods.base import (
    Episodes,
    FewShotMethod,
    Parts,
    batched_class_means,
    class_means,
    projection,
    require,
)


@dataclass(frozen=True)
class ProtoOptions:
    distance: str = "squared_euclidean"  # squared_euclidean (the paper's) | cosine
    standardise: bool = False  # robust z-scores of backbone features, fitted on the training items

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
    pretrained features. `standardise` puts every feature on one scale first (median and
    interquartile range of the training items' features, z-scores clipped to +-10; fitted once,
    before training): hand-crafted features (`lc_features`) mix amplitudes, periods and counts.
    """

    Options = ProtoOptions

    def __init__(self, parts: Parts, options: ProtoOptions):
        super().__init__(parts, options)
        self.head = projection(parts.feature_dim, parts.head_dim)
        self.log_scale = nn.Parameter(torch.tensor(0.0 if options.distance != "cosine" else 2.3))
        self.prototypes: torch.Tensor | None = None
        if options.standardise:
            self.register_buffer("feature_centre", torch.zeros(parts.feature_dim))
            self.register_buffer("feature_scale", torch.ones(parts.feature_dim))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        if self.options.standardise:
            features = ((features - self.feature_centre) / self.feature_scale).clamp(-10, 10)
        return self.head(features)

    @torch.no_grad()
    def observe(self, training_inputs) -> None:
        if not self.options.standardise:
            return
        inputs = training_inputs()
        features = torch.cat([self.backbone(inputs[s : s + 256]) for s in range(0, len(inputs), 256)])
        low, centre, high = torch.quantile(features.double(), torch.tensor([0.25, 0.5, 0.75],
                                                                           dtype=torch.double), dim=0)
        spread = (high - low) / 1.349  # the IQR of a unit normal
        self.feature_centre.copy_(centre.float())
        self.feature_scale.copy_(torch.where(spread > 1e-8, spread, torch.ones_like(spread)).float())

    def process_support_set(self, support, labels, class_text) -> None:
        self.prototypes = class_means(self.embed(support), labels)

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        return self._logits(self.embed(query), require(self.prototypes))

    def batch_logits(self, episodes: Episodes) -> torch.Tensor:
        embedded = episodes.map(self.embed)
        prototypes = batched_class_means(embedded.support, episodes.support_labels)
        return self._logits(embedded.query, prototypes)

    def _logits(self, embeddings: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        """(..., N_q, n_way) from query embeddings (..., N_q, D) and prototypes (..., n_way, D)."""
        if self.options.distance == "cosine":
            similarity = nn.functional.normalize(embeddings, dim=-1) @ \
                nn.functional.normalize(prototypes, dim=-1).transpose(-1, -2)
            return self.log_scale.exp() * similarity
        distances = torch.cdist(embeddings, prototypes).pow(2) / embeddings.shape[-1]
        return -self.log_scale.exp() * distances
