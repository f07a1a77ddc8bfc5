"""Zero-shot recognition from class texts in a learned joint space (CLIP-style training:
Radford et al., ICML 2021), and a multimodal variant that also uses the support images.

Image side: backbone features -> linear projection -> LayerNorm -> unit length. Text side: the
cached, frozen all-MiniLM-L6-v2 class embeddings -> linear projection -> LayerNorm -> unit length.
Training is a symmetric contrastive loss between an episode's images and its classes' texts, on
training classes only; at test time the classes are new.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from fewshot.core.errors import UserError
from fewshot.models.methods import METHODS
from fewshot.models.methods.base import (
    Episode,
    Episodes,
    FewShotMethod,
    Parts,
    batched_class_means,
    class_means,
    per_item,
    require,
)


@dataclass(frozen=True)
class ZeroShotOptions:
    temperature: float = 0.07   # initial; learned (as log of its inverse, capped at 100)
    text_projection: bool = True  # false: keep the text space, map images into it (head_dim unused)
    dropout: float = 0.0        # on image features, in training
    hidden: int = 0             # image side: a hidden layer of this width (GELU) before the projection

    def __post_init__(self):
        if self.temperature <= 0 or not 0 <= self.dropout < 1 or self.hidden < 0:
            raise UserError(f"zero-shot temperature {self.temperature} must be > 0, dropout "
                            f"{self.dropout} in [0, 1) and hidden {self.hidden} >= 0")


@dataclass(frozen=True)
class MultimodalOptions(ZeroShotOptions):
    image_weight: float = 0.5   # initial weight of the support prototypes vs the class texts

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.image_weight < 1:
            raise UserError(f"multimodal image_weight {self.image_weight} must be in (0, 1)")


def _side(in_dim: int, out_dim: int, dropout: float = 0.0, hidden: int = 0) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Dropout(dropout)]
    if hidden > 0:
        layers += [nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout)]
        in_dim = hidden
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim))


@METHODS.register("zero_shot")
class ZeroShot(FewShotMethod):
    """Ignores support images: an episode's classifier is its classes' projected texts."""

    Options = ZeroShotOptions

    @classmethod
    def check_entry(cls, options: ZeroShotOptions, head_dim: int, has_imagenet_classifier: bool) -> None:
        super().check_entry(options, head_dim, has_imagenet_classifier)
        if options.text_projection and head_dim <= 0:
            raise UserError(f"zero-shot needs head_dim > 0 (the joint space; got {head_dim}) "
                            "unless options.text_projection is false")

    def __init__(self, parts: Parts, options: ZeroShotOptions):
        super().__init__(parts, options)
        joint = parts.head_dim if options.text_projection else parts.text_dim
        self.image_side = _side(parts.feature_dim, joint, options.dropout, options.hidden)
        self.text_side = _side(parts.text_dim, joint) if options.text_projection else nn.Identity()
        self.log_inverse_temperature = nn.Parameter(torch.tensor(math.log(1 / options.temperature)))
        self.prototypes: torch.Tensor | None = None

    def embed_images(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.image_side(self.backbone(x)), dim=-1)

    def embed_texts(self, text: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.text_side(text), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.log_inverse_temperature.clamp(max=math.log(100)).exp()

    def process_support_set(self, support, labels, class_text) -> None:
        self.prototypes = self.embed_texts(class_text)

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        return self.scale() * self.embed_images(query) @ require(self.prototypes).T

    def batch_logits(self, episodes: Episodes) -> torch.Tensor:
        images = episodes.map(self.embed_images)
        return self.scale() * images.query @ self.batch_prototypes(images).transpose(1, 2)

    def batch_prototypes(self, images: Episodes) -> torch.Tensor:
        """(E, n_way, joint) class prototypes, as `process_support_set` makes them per episode,
        from the episodes with their items already through `embed_images`."""
        return per_item(self.embed_texts, images.class_text)

    def loss(self, episode: Episode) -> torch.Tensor:
        images = self.embed_images(torch.cat([episode.support, episode.query]))
        labels = torch.cat([episode.support_labels, episode.query_labels])
        return symmetric_contrastive(self.scale() * images @ self.embed_texts(episode.class_text).T,
                                     labels)


def symmetric_contrastive(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of image->text and text->image cross-entropy for logits (N_images, n_classes).

    A class has several images, so text->image targets spread evenly over that class's images.
    """
    image_to_text = nn.functional.cross_entropy(logits, labels)
    targets = nn.functional.one_hot(labels, logits.shape[1]).T.float()
    targets = targets / targets.sum(1, keepdim=True)
    text_to_image = nn.functional.cross_entropy(logits.T, targets)
    return (image_to_text + text_to_image) / 2


@METHODS.register("multimodal")
class Multimodal(ZeroShot):
    """Class prototype = unit mix of the support images' mean and the class text, in the joint space.

    The mixing weight is learned (as a logit), trained by the episode's cross-entropy on top of the
    zero-shot contrastive loss.
    """

    Options = MultimodalOptions

    def __init__(self, parts: Parts, options: MultimodalOptions):
        super().__init__(parts, options)
        self.mix_logit = nn.Parameter(torch.logit(torch.tensor(options.image_weight)))

    def process_support_set(self, support, labels, class_text) -> None:
        self.prototypes = self._mix(class_means(self.embed_images(support), labels),
                                    self.embed_texts(class_text))

    def batch_prototypes(self, images: Episodes) -> torch.Tensor:
        means = batched_class_means(images.support, images.support_labels)
        return self._mix(means, per_item(self.embed_texts, images.class_text))

    def _mix(self, image_means: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        weight = torch.sigmoid(self.mix_logit)
        mixed = weight * nn.functional.normalize(image_means, dim=-1) + (1 - weight) * texts
        return nn.functional.normalize(mixed, dim=-1)

    def loss(self, episode: Episode) -> torch.Tensor:
        return super().loss(episode) + FewShotMethod.loss(self, episode)
