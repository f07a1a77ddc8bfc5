"""A tiny generated image-folder dataset (coloured shapes) for the smoke preset, CI and tests.

Usage: python -m fewshot.tools.shapes DIR [--classes 24] [--per-class 4]

Each class is a size, a colour and a shape kind (24 combinations, then they repeat), described in
classes.csv in words ("a small red circle"), so that text models (zero-shot) have something to read,
and a zero-shot model sees every word in training but meets new combinations at test time; each
of its images (a group of its own) varies margin and outline, so support and query images differ.
`data/shapes/` is this command's output, committed, so the smoke preset needs no download and reads
the same pixels everywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fewshot.core.errors import UserError, one_line_errors

SHAPES = ["circle", "square", "triangle"]
COLOURS = {"red": (215, 30, 30), "blue": (30, 70, 220), "green": (30, 150, 50), "yellow": (235, 200, 20)}
SIZES = ["large", "small"]


def kind_of(class_index: int) -> tuple[str, str, str]:
    """(size, colour, shape) of a class: every colour with every shape, large then small.

    >>> [kind_of(c) for c in (0, 1, 3, 11, 12)]  # doctest: +NORMALIZE_WHITESPACE
    [('large', 'red', 'circle'), ('large', 'blue', 'square'), ('large', 'yellow', 'circle'),
     ('large', 'yellow', 'triangle'), ('small', 'red', 'circle')]
    """
    combinations = len(COLOURS) * len(SHAPES)
    return (SIZES[(class_index // combinations) % len(SIZES)], list(COLOURS)[class_index % len(COLOURS)],
            SHAPES[class_index % len(SHAPES)])


def draw_item(class_index: int, variant: int, size: int = 40) -> Image.Image:
    """A shape whose kind and colour depend on the class, drawn in a per-variant style."""
    rng = np.random.default_rng(class_index * 100 + variant)
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    size_name, colour_name, kind = kind_of(class_index)
    colour = COLOURS[colour_name] + (255,)
    margin = int(rng.integers(2, 8)) + (10 if size_name == "small" else 0)
    box = [margin, margin, size - margin, size - margin]
    if kind == "circle":
        draw.ellipse(box, fill=colour, outline=(0, 0, 0, 255), width=variant % 3)
    elif kind == "square":
        draw.rectangle(box, fill=colour, outline=(0, 0, 0, 255), width=variant % 3)
    else:
        draw.polygon([(size // 2, margin), (margin, size - margin), (size - margin, size - margin)],
                     fill=colour)
    return image


def make_image_folder(root: Path, n_classes: int, per_class: int, describe: bool = True) -> Path:
    """Write `n_classes` folders of `per_class` PNGs (and a classes.csv with descriptions)."""
    if n_classes < 1 or per_class < 1:
        raise UserError(f"need at least 1 class and 1 image per class, got {n_classes} x {per_class}")
    for c in range(n_classes):
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for v in range(per_class):
            draw_item(c, v).save(folder / f"item_{v}.png")
    if describe:
        lines = ["class_name,description"] + [f"class_{c:02d},a {' '.join(kind_of(c))}"
                                              for c in range(n_classes)]
        (root / "classes.csv").write_text("\n".join(lines) + "\n")
    return root


@one_line_errors
def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m fewshot.tools.shapes",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--classes", type=int, default=24)
    parser.add_argument("--per-class", type=int, default=4)
    args = parser.parse_args()
    make_image_folder(args.folder, args.classes, args.per_class)
    print(f"wrote {args.classes} classes x {args.per_class} images to {args.folder}")


if __name__ == "__main__":
    main()
