"""Recognising new images with a trained method: load it, read images, embed, calibrated probabilities.

A trained method (`data/models/<name>/model.pt`) is loaded with the temperature the evaluate stage
fitted on validation episodes (`reports/metrics/<name>.json`) and the image size of the data it was
trained on. Images are normalised exactly as curation does (any mode or size -> square RGB on
white), so a user's RGBA, greyscale or large image is read the way training images were.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fewshot import images as images_lib
from fewshot import models, paths
from fewshot.backbones import BACKBONES, embed
from fewshot.errors import UserError
from fewshot.fileio import sha256_file
from fewshot.methods.base import FewShotMethod


@dataclass
class Trained:
    """A trained method ready for inference.

    `method` takes backbone features when the backbone is frozen (then `backbone` computes them),
    else pixels (then `backbone` is None and the method holds its fine-tuned backbone).
    """

    name: str
    path: Path
    sha256: str
    spec: dict
    method: FewShotMethod
    backbone: torch.nn.Module | None
    temperature: float
    image_size: int
    templates: list[str]

    @property
    def provenance(self) -> dict:
        """What a support set or a served model records about the model that made it."""
        return {"model": self.name, "model_sha256": self.sha256, "backbone": self.spec["backbone"],
                "method": self.spec["method"], "image_size": self.image_size}

    @torch.no_grad()
    def inputs(self, pixels: np.ndarray, batch_size: int = 64) -> torch.Tensor:
        """uint8 images (N, 3, H, W) -> what `method` takes (features, or the pixels themselves)."""
        if self.backbone is None:
            return torch.as_tensor(pixels)
        if len(pixels) == 0:  # a support set of class names only: no images, right feature shape
            blank = torch.zeros((1, 3, self.image_size, self.image_size), dtype=torch.uint8)
            return torch.zeros((0, *self.backbone(blank).shape[1:]))
        if len(pixels) <= batch_size:  # one batch: no progress bar
            return self.backbone(torch.as_tensor(pixels)).float()
        return embed(self.backbone, pixels, batch_size, desc="embed images")


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


def load(model: str, temperature: float | None = None, image_size: int | None = None,
         templates: list[str] | None = None, name: str | None = None) -> Trained:
    """Load a trained method by name or path.

    The temperature defaults to the one fitted by evaluate@<name> (1.0 when the model was never
    evaluated); the image size and text templates to params.yaml's (curate.image_size,
    embed.text_templates), the ones the model was trained with.
    """
    from fewshot import params as params_lib

    found, path = resolve_model(model)
    name = name or found
    method, info = models.load(path, on_features=True)
    backbone = None
    if info["frozen"]:
        backbone = BACKBONES.create(info["spec"]["backbone"]).module.eval()
    else:
        method, info = models.load(path, on_features=False)
    if image_size is None or templates is None:
        params = params_lib.load() if Path("params.yaml").is_file() else params_lib.Params()
        image_size = image_size or params.curate.image_size
        templates = templates or params.embed.text_templates
    if temperature is None:
        metrics = paths.METRICS / f"{name}.json"
        temperature = json.loads(metrics.read_text()).get("temperature", 1.0) if metrics.is_file() else 1.0
    return Trained(name, path, sha256_file(path), info["spec"], method, backbone, float(temperature),
                   image_size, list(templates))


def read_image(path: Path, size: int) -> np.ndarray:
    """One image file -> uint8 (3, size, size), normalised as curation does.

    Raises:
        UserError: naming the file, when it is not a readable image or too large to decode safely.
    """
    if not path.is_file():
        raise UserError(f"image '{path}' does not exist or is not a file")
    try:
        if path.suffix.lower() == ".svg":
            return images_lib.decode(images_lib.normalise(path, size)).transpose(2, 0, 1).copy()
        # Raster: the same steps as curation without its PNG round trip (lossless: same pixels).
        with Image.open(path) as image:
            image.load()
            square = images_lib.on_white_square(image, size)
    except Image.DecompressionBombError as err:
        raise UserError(f"image '{path}' is too large to decode safely ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"cannot read image '{path}': {err}") from None
    return np.asarray(square).transpose(2, 0, 1).copy()


def read_images(files: list[Path], size: int) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Read every file; a bad one is reported, not fatal.

    Returns:
        uint8 (M, 3, size, size) of the readable files, their indices in `files`, and
        {index: error message} for the others.
    """
    pixels, ok, errors = [], [], {}
    for index, path in enumerate(files):
        try:
            pixels.append(read_image(path, size))
            ok.append(index)
        except UserError as err:
            errors[index] = str(err)
    stacked = np.stack(pixels) if pixels else np.zeros((0, 3, size, size), dtype=np.uint8)
    return stacked, ok, errors


def image_files(target: Path) -> list[Path]:
    """A file, or every image file of a folder (sorted, not recursive)."""
    if target.is_dir():
        return sorted(p for p in target.iterdir() if p.is_file() and not p.name.startswith("."))
    if not target.exists():
        raise UserError(f"query '{target}' does not exist; expected an image file or a folder")
    return [target]


def probabilities(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Calibrated class probabilities: softmax(logits / T)."""
    return torch.softmax(logits / temperature, dim=-1)
