"""Building, saving and loading a method with its backbone and head."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from fewshot.backbones import BACKBONES
from fewshot.fileio import atomic_path
from fewshot.methods import METHODS
from fewshot.methods.base import FewShotMethod


@dataclass(frozen=True)
class ModelSpec:
    method: str
    backbone: str
    head_dim: int


def build(spec: ModelSpec, on_features: bool) -> tuple[FewShotMethod, bool]:
    """The method, and whether its backbone is pretrained (frozen).

    With `on_features`, a pretrained backbone is left out (an identity) and the method takes cached
    features; otherwise it takes images.
    """
    backbone = BACKBONES.create(spec.backbone)
    head = nn.Linear(backbone.out_dim, spec.head_dim) if spec.head_dim > 0 else nn.Identity()
    body = nn.Identity() if (on_features and backbone.pretrained) else backbone.module
    encoder = nn.Sequential(OrderedDict(backbone=body, head=head))
    return METHODS.create(spec.method, encoder=encoder), backbone.pretrained


def save(path: Path, method: FewShotMethod, spec: ModelSpec, pretrained: bool, info: dict) -> None:
    """Write the trainable state (not the frozen backbone, which its wheel provides) and provenance."""
    state = {k: v for k, v in method.state_dict().items()
             if not (pretrained and k.startswith("encoder.backbone."))}
    with atomic_path(path) as tmp:
        torch.save({"spec": asdict(spec), "state": state, "info": info}, tmp)


def load(path: Path, on_features: bool) -> tuple[FewShotMethod, dict]:
    """A saved method ready for evaluation, and its provenance (`info`)."""
    saved = torch.load(path, map_location="cpu")
    spec = ModelSpec(**saved["spec"])
    method, pretrained = build(spec, on_features)
    strict = not pretrained or on_features
    missing, unexpected = method.load_state_dict(saved["state"], strict=strict)
    if unexpected or any(not k.startswith("encoder.backbone.") for k in missing):
        raise ValueError(f"checkpoint {path} does not match {spec}: {missing or unexpected}")
    method.eval()
    return method, saved["info"] | {"spec": asdict(spec), "pretrained": pretrained}
