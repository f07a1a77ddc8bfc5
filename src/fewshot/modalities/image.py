"""Images: any raster or SVG file -> a square RGB picture on white, stored as PNG bytes; decoded
into uint8 tensors (N, 3, H, W), the input of the image encoders (`fewshot.models.backbones.image`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from fewshot.core.errors import UserError
from fewshot.modalities import MODALITIES, Modality

if TYPE_CHECKING:
    import torch

SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".svg"})


@dataclass(frozen=True)
class ImageSettings:
    size: int  # stored and read as size x size RGB

    def __post_init__(self):
        if not 16 <= self.size <= 1024:
            raise UserError(f"size {self.size} must be between 16 and 1024 pixels")


@MODALITIES.register("image")
class ImageModality(Modality):
    name = "image"
    Settings = ImageSettings
    suffixes = SUFFIXES
    payload = "image"

    def store(self, path: Path, settings: ImageSettings) -> bytes:
        return normalise(path, settings.size)

    def decode(self, stored: list[bytes]) -> torch.Tensor:
        import torch

        return torch.from_numpy(decode_batch(stored))

    def columns(self, stored: bytes | None) -> dict:
        height, width, channels = decode(stored).shape if isinstance(stored, bytes) else (0, 0, 0)
        return {"image_height": height, "image_width": width, "image_channels": channels}

    def expectations(self, gx, settings: ImageSettings) -> list:
        between = gx.expectations.ExpectColumnValuesToBeBetween
        return [between(column="image_height", min_value=settings.size, max_value=settings.size),
                between(column="image_width", min_value=settings.size, max_value=settings.size),
                between(column="image_channels", min_value=3, max_value=3)]

    def read(self, path: Path, settings: ImageSettings) -> np.ndarray:
        return read_image(path, settings.size)

    def blank(self, settings: ImageSettings) -> np.ndarray:
        return np.full((1, 3, settings.size, settings.size), 255, dtype=np.uint8)

    def verify(self, path: Path) -> None:
        """Refuse a file that is no readable image, cheaply (ingest; SVG is checked by curate)."""
        if path.suffix.lower() == ".svg":
            return
        try:
            with Image.open(path) as img:
                img.verify()
        except Image.DecompressionBombError as err:
            raise UserError(f"image '{path}' is too large to decode safely ({err}); expected an "
                            "image under Pillow's decompression-bomb limit") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise UserError(f"cannot read image '{path}': {err}") from None


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


def read_image(path: Path, size: int) -> np.ndarray:
    """One image file -> uint8 (3, size, size), normalised as curation does.

    Raises:
        UserError: naming the file, when it is not a readable image or too large to decode safely.
    """
    if not path.is_file():
        raise UserError(f"image '{path}' does not exist or is not a file")
    try:
        if path.suffix.lower() == ".svg":
            return decode(normalise(path, size)).transpose(2, 0, 1).copy()
        # Raster: the same steps as curation without its PNG round trip (lossless: same pixels).
        with Image.open(path) as image:
            image.load()
            square = on_white_square(image, size)
    except Image.DecompressionBombError as err:
        raise UserError(f"image '{path}' is too large to decode safely ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"cannot read image '{path}': {err}") from None
    return np.asarray(square).transpose(2, 0, 1).copy()


def _render_svg(path: Path, size: int) -> Image.Image:
    import cairosvg  # only SVG sources need cairo

    png = cairosvg.svg2png(url=str(path), output_width=size)  # keeps aspect ratio
    return Image.open(io.BytesIO(png))
