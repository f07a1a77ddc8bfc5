"""Shared fixtures: tiny generated images and image-folder datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

SHAPES = ["ellipse", "rectangle", "triangle"]


def draw_item(class_index: int, variant: int, size: int = 40) -> Image.Image:
    """A shape whose kind and colour depend on the class, drawn in a per-variant style."""
    rng = np.random.default_rng(class_index * 100 + variant)
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    colour = tuple(int(c) for c in np.random.default_rng(class_index).integers(0, 200, 3)) + (255,)
    margin = int(rng.integers(2, 8))
    box = [margin, margin, size - margin, size - margin]
    kind = SHAPES[class_index % len(SHAPES)]
    if kind == "ellipse":
        draw.ellipse(box, fill=colour, outline=(0, 0, 0, 255), width=variant % 3)
    elif kind == "rectangle":
        draw.rectangle(box, fill=colour, outline=(0, 0, 0, 255), width=variant % 3)
    else:
        draw.polygon([(size // 2, margin), (margin, size - margin), (size - margin, size - margin)],
                     fill=colour)
    return image


def make_image_folder(root: Path, n_classes: int, per_class: int, describe: bool = True) -> Path:
    for c in range(n_classes):
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True)
        for v in range(per_class):
            draw_item(c, v).save(folder / f"design_{v}.png")
    if describe:
        lines = ["class_name,description"] + [f"class_{c:02d},shape number {c}" for c in range(n_classes)]
        (root / "classes.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "my_data", n_classes=12, per_class=4)
