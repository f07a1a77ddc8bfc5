import pytest

from fewshot.errors import UserError
from fewshot.sources import MANIFEST_COLUMNS, SOURCES
from fewshot.sources.emoji import _fluent_names
from fewshot.sources.packages import Package, fetch


def test_image_folder_manifest_has_one_row_per_image_with_descriptions(image_folder, tmp_path):
    manifest = SOURCES.create("image_folder", raw_dir=tmp_path / "raw", image_folder=str(image_folder))
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert len(manifest) == 48 and manifest["class_id"].nunique() == 12
    assert manifest.loc[0, "description"] == "shape number 0"
    assert all((tmp_path / "raw" / p).exists() for p in manifest["path"])


def test_missing_image_folder_is_named(tmp_path):
    with pytest.raises(UserError, match=r"image folder '.*nowhere' does not exist"):
        SOURCES.create("image_folder", raw_dir=tmp_path / "raw", image_folder=str(tmp_path / "nowhere"))


def test_unset_image_folder_says_which_key(tmp_path):
    with pytest.raises(UserError, match="data.image_folder is not set"):
        SOURCES.create("image_folder", raw_dir=tmp_path / "raw", image_folder=None)


def test_empty_class_folder_is_named(image_folder, tmp_path):
    (image_folder / "empty_class").mkdir()
    with pytest.raises(UserError, match=r"class folder '.*empty_class' holds no images"):
        SOURCES.create("image_folder", raw_dir=tmp_path / "raw", image_folder=str(image_folder))


def test_corrupt_image_is_named(image_folder, tmp_path):
    (image_folder / "class_03" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(UserError, match=r"cannot read image '.*class_03/broken.png'"):
        SOURCES.create("image_folder", raw_dir=tmp_path / "raw", image_folder=str(image_folder))


def test_unknown_source_lists_valid_names():
    with pytest.raises(UserError, match="unknown data source 'flickr'; valid names: emoji, image_folder"):
        SOURCES.get("flickr")


def test_fluent_names_cover_flags_and_short_names():
    entry = {"name": "Egypt Flag", "short_names": ["flag-eg"]}
    assert "flag-egypt" in _fluent_names(entry) and "flag-eg" in _fluent_names(entry)


def test_fetch_refuses_a_file_with_the_wrong_checksum(tmp_path):
    pkg = Package("pypi", "six", "1.16.0", "six-1.16.0-py2.py3-none-any.whl", "0" * 64, "MIT")
    (tmp_path / pkg.filename).write_bytes(b"tampered")
    with pytest.raises(UserError, match=r"checksum mismatch for six-1.16.0.*pinned 0000"):
        fetch(pkg, tmp_path)
