"""Checkpoints: building a method with its backbone and heads from a `models` entry, saving it with
everything inference needs (`info`), and loading it back."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict
from pathlib import Path

import torch

from fewshot.core import params as params_lib
from fewshot.core.errors import UserError
from fewshot.core.fileio import atomic_path
from fewshot.models.backbones import BACKBONES
from fewshot.models.methods import METHODS
from fewshot.models.methods.base import FewShotMethod, Parts


def build(spec: params_lib.Model, on_features: bool, text_dim: int,
          imagenet_text: torch.Tensor | None = None) -> tuple[FewShotMethod, bool]:
    """The method, and whether its backbone is frozen (then its features can be cached).

    With `on_features`, a frozen backbone is left out (an identity) and the method takes cached
    features; otherwise it takes raw inputs of its modality.

    Raises:
        UserError: unknown method or backbone, or options the method does not have.
    """
    cls = METHODS.get(spec.method)
    options = params_lib.from_dict(spec.options, cls.Options, prefix=f"{spec.method}.options.")
    backbone = BACKBONES.create(spec.backbone)
    frozen = backbone.pretrained and spec.freeze
    if backbone.pretrained and not spec.freeze:
        backbone.module.requires_grad_(True)  # fine-tuning: trained from raw inputs, features not cached
    body = torch.nn.Identity() if (on_features and frozen) else backbone.module
    parts = Parts(body, backbone.out_dim, spec.head_dim, text_dim, backbone.classifier, imagenet_text)
    return cls(parts, options), frozen


def save(path: Path, method: FewShotMethod, spec: params_lib.Model, text_dim: int, frozen: bool,
         info: dict) -> None:
    """Write the trainable state (not a frozen backbone, which its wheel provides), the entry it
    was built from with every option resolved (so a later change of an option's default in code
    cannot change a saved model), and `info` (provenance, and what inference needs)."""
    spec = dataclasses.replace(spec, options=asdict(method.options))
    state = {k: v for k, v in method.state_dict().items() if not (frozen and k.startswith("backbone."))}
    with atomic_path(path) as tmp:
        torch.save({"spec": asdict(spec) | {"text_dim": text_dim}, "state": state, "info": info}, tmp)


# Spec fields added after models were first saved, with the value every older model was trained
# with: a model.pt without them still loads (not defaults for params: params.yaml holds those).
ADDED_SPEC_FIELDS = {"pretrain_steps": 0, "train_n_query": 0}


def load(path: Path, on_features: bool) -> tuple[FewShotMethod, dict]:
    """A saved method ready for evaluation, and its provenance (`info`).

    Raises:
        UserError: naming the file, when it cannot be read or is not a checkpoint of `save`.
    """
    saved = _read_checkpoint(Path(path))
    fields = ADDED_SPEC_FIELDS | dict(saved["spec"])
    text_dim = fields.pop("text_dim")
    try:
        spec = params_lib.Model(**fields)
        method, frozen = build(spec, on_features, text_dim)
        missing, unexpected = method.load_state_dict(saved["state"], strict=False)
    except (TypeError, ValueError, RuntimeError, UserError) as err:  # wrong types, shapes or values
        raise UserError(f"checkpoint '{path}' does not build its spec ({type(err).__name__}: "
                        f"{str(err)[:200]}); expected a model.pt written by a train stage") from None
    if unexpected or any(not (frozen and k.startswith("backbone.")) for k in missing):
        raise UserError(f"checkpoint {path} does not match its spec {spec}: "
                        f"{(missing or unexpected)[:3]}; expected a model.pt written by a train stage")
    method.eval()
    return method, saved["info"] | {"spec": asdict(spec), "frozen": frozen, "text_dim": text_dim}


def _read_checkpoint(path: Path) -> dict:
    """The dict `save` wrote. torch.load's default `weights_only` refuses pickled code, so a crafted
    file fails here as not-a-checkpoint; the underlying message is not shown (it suggests turning
    that protection off)."""
    expected = "expected a model.pt written by a train stage"
    try:
        saved = torch.load(path, map_location="cpu")
    except (PermissionError, FileNotFoundError, IsADirectoryError) as err:
        raise UserError(f"cannot read model file '{path}' ({err.strerror}); {expected}") from None
    except Exception as err:  # truncated zip, pickle, unpickling refusals: torch raises many types
        raise UserError(f"'{path}' is not a readable model checkpoint ({type(err).__name__}); "
                        f"{expected}") from None
    allowed = {f.name for f in dataclasses.fields(params_lib.Model)} | {"text_dim"}
    required = allowed - set(ADDED_SPEC_FIELDS)
    if (not isinstance(saved, dict) or not all(isinstance(saved.get(k), dict) for k in
                                               ("spec", "state", "info"))
            or not required <= set(saved["spec"]) <= allowed):
        raise UserError(f"'{path}' is not a model checkpoint (spec, state and info with the "
                        f"spec fields {', '.join(sorted(required))}); {expected}")
    return saved


def inference_record(modality: str, settings: dict, backbone: str, templates: list[str]) -> dict:
    """What inference needs to read inputs and class texts as training did (`info["inference"]`):
    the modality and its settings, how the backbone prepares inputs (e.g. normalisation; built
    under a forked RNG, so recording it changes nothing training draws), the text model, its
    prompt templates and the class fields they may use."""
    from fewshot.data import text

    with torch.random.fork_rng():
        inputs = BACKBONES.create(backbone).inputs
    return {"modality": modality, "settings": dict(settings), "backbone_inputs": inputs,
            "text_model": text.MODEL_NAME, "templates": list(templates), "text_fields": list(text.FIELDS)}
