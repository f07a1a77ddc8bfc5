import io

import numpy as np
import pytest
from PIL import Image

from fewshot.core.errors import UserError
from fewshot.modalities import image as images

SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" viewBox="0 0 20 20">
<circle cx="10" cy="10" r="8" fill="#ff0000"/></svg>"""


def test_transparent_png_is_put_on_white_and_padded_to_square(tmp_path):
    src = Image.new("RGBA", (40, 20), (0, 0, 255, 0))
    src.paste((0, 0, 255, 255), (10, 5, 30, 15))
    src.save(tmp_path / "wide.png")
    out = images.decode(images.normalise(tmp_path / "wide.png", 32))
    assert out.shape == (32, 32, 3)
    assert tuple(out[0, 0]) == (255, 255, 255)      # padding and transparency are white
    assert tuple(out[16, 16]) == (0, 0, 255)         # content kept, centred


def test_svg_is_rendered(tmp_path):
    (tmp_path / "dot.svg").write_bytes(SVG)
    out = images.decode(images.normalise(tmp_path / "dot.svg", 24))
    assert out.shape == (24, 24, 3)
    assert out[12, 12, 0] > 200 and out[12, 12, 1] < 50


def test_greyscale_becomes_rgb(tmp_path):
    Image.new("L", (10, 10), 128).save(tmp_path / "grey.png")
    assert images.decode(images.normalise(tmp_path / "grey.png", 8)).shape == (8, 8, 3)


def test_unreadable_image_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"cannot read image '.*broken.png'"):
        images.normalise(bad, 16)


def test_decode_batch_is_channels_first_uint8():
    png = images.to_png(Image.new("RGB", (6, 6), (1, 2, 3)))
    batch = images.decode_batch([png, png])
    assert batch.shape == (2, 3, 6, 6) and batch.dtype == np.uint8 and batch[0, 2, 0, 0] == 3
    assert Image.open(io.BytesIO(png)).size == (6, 6)
