"""Shared fixtures: tiny generated images and image-folder datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

from fewshot.shapes import make_image_folder


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "my_data", n_classes=12, per_class=4)
