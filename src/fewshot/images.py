"""Image normalisation: any raster or SVG -> square RGB on white, PNG bytes; and back to tensors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fewshot.errors import UserError


def normalise(path: Path, size: int) -> bytes:
    """Read `path` and return a `size`x`size` RGB PNG, the content centred on white.

    Raises:
        UserError: naming the file, when it cannot be decoded.
    """
    try:
        image = _render_svg(path, size) if path.suffix.lower() == ".svg" else Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"cannot read image '{path}': {err}") from None
    return to_png(on_white_square(image, size))


def on_white_square(image: Image.Image, size: int) -> Image.Image:
    """Composite transparency onto white, fit the longer side to `size`, pad to a square."""
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    scale = size / max(rgb.size)
    new_size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    rgb = rgb.resize(new_size, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(rgb, ((size - rgb.width) // 2, (size - rgb.height) // 2))
    return canvas


def to_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def decode(png: bytes) -> np.ndarray:
    """PNG bytes -> uint8 array (H, W, 3)."""
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def decode_batch(pngs: list[bytes]) -> np.ndarray:
    """PNG bytes -> uint8 array (N, 3, H, W), the layout the backbones take."""
    return np.stack([decode(png) for png in pngs]).transpose(0, 3, 1, 2).copy()


def _render_svg(path: Path, size: int) -> Image.Image:
    import cairosvg  # only SVG sources need cairo

    png = cairosvg.svg2png(url=str(path), output_width=size)  # keeps aspect ratio
    return Image.open(io.BytesIO(png))
