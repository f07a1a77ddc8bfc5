"""A trained model as a self-contained artefact: load it, read raw inputs, calibrated probabilities.

A trained model (`data/models/<name>/model.pt`) records everything inference needs: its modality
and that modality's settings (e.g. image size), the backbone's input preparation, the text model,
prompt templates and class fields, and the params and episode hashes it came from. Evaluate adds
the temperature it fitted on validation episodes beside it (`data/models/<name>.calibration.json`,
valid only for the checkpoint whose SHA-256 it names). Inference reads only these files, never the
current params.yaml: a model predicts as it was evaluated, whatever checkout it is used from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fewshot.core import paths
from fewshot.core.errors import UserError
from fewshot.core.fileio import sha256_file
from fewshot.data.class_folders import files_of
from fewshot.modalities import Modality, modality_of
from fewshot.models import checkpoint
from fewshot.models.backbones import BACKBONES, embed
from fewshot.models.methods.base import FewShotMethod


@dataclass
class Trained:
    """A trained method ready for inference.

    `method` takes backbone features when the backbone is frozen (then `backbone` computes them),
    else raw inputs (then `backbone` is None and the method holds its fine-tuned backbone).
    """

    name: str
    path: Path
    sha256: str
    spec: dict
    method: FewShotMethod
    backbone: torch.nn.Module | None
    temperature: float
    modality: Modality
    settings: object      # the modality's settings the model was trained with (e.g. image size)
    templates: list[str]  # the prompt templates of its class texts

    @property
    def provenance(self) -> dict:
        """What a support set or a served model records about the model that made it."""
        return {"model": self.name, "model_sha256": self.sha256, "backbone": self.spec["backbone"],
                "method": self.spec["method"], "modality": self.modality.name,
                "settings": self.modality.settings_dict(self.settings)}

    def read(self, files: list[Path]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        """Read every file as the model's modality does; a bad one is reported, not fatal.

        Returns:
            the model inputs of the readable files (M, ...), their indices in `files`, and
            {index: error message} for the others.
        """
        return read_files(self.modality, self.settings, files)

    @torch.no_grad()
    def inputs(self, raw: np.ndarray, batch_size: int = 64) -> torch.Tensor:
        """Raw model inputs (N, ...) -> what `method` takes (features, or the inputs themselves)."""
        if self.backbone is None:
            return torch.as_tensor(raw)
        if len(raw) == 0:  # a support set of class names only: no inputs, right feature shape
            blank = torch.as_tensor(self.modality.blank(self.settings))
            return torch.zeros((0, *self.backbone(blank).shape[1:]))
        if len(raw) <= batch_size:  # one batch: no progress bar
            return self.backbone(torch.as_tensor(raw)).float()
        return embed(self.backbone, raw, batch_size, desc=f"embed {self.modality.name} inputs")


def read_files(modality: Modality, settings, files: list[Path]
               ) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """`Trained.read` for any reader of `modality` with `settings` (an exported model's too)."""
    inputs, ok, errors = [], [], {}
    for index, path in enumerate(files):
        try:
            inputs.append(modality.read(path, settings))
            ok.append(index)
        except UserError as err:
            errors[index] = str(err)
    stacked = modality.collate(inputs) if inputs else modality.blank(settings)[:0]
    return stacked, ok, errors


def resolve_model(model: str) -> tuple[str, Path]:
    """A model name (key of params `models`) or a path to a model.pt / its folder -> (name, file)."""
    candidate = Path(model)
    for path in (candidate, candidate / "model.pt", paths.model_file(model)):
        if path.is_file():
            name = path.parent.name if path.name == "model.pt" else path.stem
            return name, path
    known = sorted(p.parent.name for p in paths.MODELS.glob("*/model.pt"))
    raise UserError(f"no trained model '{model}': expected a model name ({', '.join(known) or 'none'}"
                    f" trained in {paths.MODELS}/; run `dvc repro`) or a path to a model.pt")


def load(model: str, temperature: float | None = None, name: str | None = None) -> Trained:
    """Load a trained model by name or path, from its artefact files alone.

    The temperature defaults to the one evaluate fitted for this very checkpoint (1.0 when it was
    never evaluated).
    """
    found, path = resolve_model(model)
    method, info = checkpoint.load(path, on_features=True)
    inference = info.get("inference")
    if not isinstance(inference, dict):
        raise UserError(f"model '{path}' does not record how to read its inputs (a checkpoint from "
                        "before self-contained models); re-run its train stage")
    backbone = None
    if info["frozen"]:
        built = BACKBONES.create(info["spec"]["backbone"])
        _raise_if_inputs_changed(path, built.inputs, inference["backbone_inputs"])
        backbone = built.module.eval()
    else:
        method, info = checkpoint.load(path, on_features=False)
    modality = modality_of(inference["modality"])
    settings = modality.settings(inference["settings"])
    sha256 = sha256_file(path)
    if temperature is None:
        temperature = fitted_temperature(path, sha256)
    return Trained(name or found, path, sha256, info["spec"], method, backbone, float(temperature),
                   modality, settings, list(inference["templates"]))


def fitted_temperature(model_file: Path, sha256: str) -> float:
    """The temperature evaluate fitted for the checkpoint with this hash, else 1.0."""
    found = paths.calibration_file(model_file)
    if not found.is_file():
        return 1.0
    fitted = json.loads(found.read_text())
    return float(fitted["temperature"]) if fitted.get("model_sha256") == sha256 else 1.0


def _raise_if_inputs_changed(path: Path, now: dict, recorded: dict) -> None:
    if json.loads(json.dumps(now)) != recorded:
        raise UserError(f"model '{path}' was trained on inputs prepared as {recorded}, but the "
                        f"backbone now prepares them as {now}; re-run its train stage")


def query_files(target: Path) -> list[Path]:
    """A file, or every file of a folder (sorted, not recursive)."""
    if target.is_dir():
        return files_of(target)
    if not target.exists():
        raise UserError(f"query '{target}' does not exist; expected a file or a folder")
    return [target]


def probabilities(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Calibrated class probabilities: softmax(logits / T)."""
    return torch.softmax(logits / temperature, dim=-1)
