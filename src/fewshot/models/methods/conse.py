"""ConSE: zero-shot by convex combination of semantic embeddings (Norouzi et al., ICLR 2014).

No training. A query image's ImageNet class probabilities (from the pretrained backbone's own
classifier) weight the text embeddings of its top-k ImageNet class names; classes are scored by
cosine similarity of that mix with their own text embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fewshot.core.errors import UserError
from fewshot.models.methods import METHODS
from fewshot.models.methods.base import Episodes, FewShotMethod, Parts, require


@dataclass(frozen=True)
class ConseOptions:
    top_k: int = 10
    scale: float = 10.0  # cosine -> logits; temperature scaling refits it on val episodes

    def __post_init__(self):
        if not 1 <= self.top_k <= 1000 or self.scale <= 0:
            raise UserError(f"conse top_k {self.top_k} must be in 1..1000 and scale {self.scale} > 0")


@METHODS.register("conse")
class ConSE(FewShotMethod):
    Options = ConseOptions

    @classmethod
    def check_entry(cls, options: ConseOptions, head_dim: int, has_imagenet_classifier: bool) -> None:
        super().check_entry(options, head_dim, has_imagenet_classifier)
        if not has_imagenet_classifier:
            raise UserError("conse needs a pretrained backbone with an ImageNet classifier "
                            "(efficientnet_lite0 or mobilenet_v2)")

    def __init__(self, parts: Parts, options: ConseOptions):
        super().__init__(parts, options)
        self.classifier = parts.imagenet_classifier
        text = parts.imagenet_text
        self.register_buffer("label_text", text if text is not None else torch.zeros(1000, parts.text_dim))
        self.class_text: torch.Tensor | None = None

    def semantic(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T) unit-length convex mix of the top-k ImageNet label embeddings."""
        probs = self.classifier(self.backbone(x)).softmax(-1)
        top, index = probs.topk(self.options.top_k, dim=-1)
        mix = (top.unsqueeze(-1) * self.label_text[index]).sum(1) / top.sum(-1, keepdim=True)
        return nn.functional.normalize(mix, dim=-1)

    def process_support_set(self, support, labels, class_text) -> None:
        self.class_text = nn.functional.normalize(class_text, dim=-1)

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        return self.options.scale * self.semantic(query) @ require(self.class_text).T

    def batch_logits(self, episodes: Episodes) -> torch.Tensor:
        class_text = nn.functional.normalize(episodes.class_text, dim=-1)
        return self.options.scale * episodes.map(self.semantic).query @ class_text.transpose(1, 2)
