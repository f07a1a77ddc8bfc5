"""The contract every entry of `MODALITIES` keeps with the pipeline (`fewshot.modalities.Modality`),
checked for each registered modality with the repository's own settings (params.yaml `modality`).

A new modality fails here until it has sample files below: that is the point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from fewshot.core.errors import UserError
from fewshot.modalities import MODALITIES, modality_of
from tests.conftest import ROOT

SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" width="30" height="20" viewBox="0 0 30 20">
<rect x="2" y="2" width="20" height="10" fill="#00aa55"/><circle cx="24" cy="14" r="5" fill="#f00"/></svg>"""


def _noise_picture(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGBA": 4, "RGB": 3, "L": 1}[mode]
    pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode)


def _image_samples(folder: Path) -> list[Path]:
    """Odd sizes and modes, so resizing, padding, transparency and conversion all take part."""
    _noise_picture("RGBA", (37, 23)).save(folder / "wide_transparent.png")
    _noise_picture("RGB", (19, 41), seed=1).save(folder / "tall.jpg", quality=80)
    _noise_picture("L", (25, 25), seed=2).save(folder / "grey.bmp")
    _noise_picture("RGB", (30, 18), seed=3).convert("P").save(folder / "palette.gif")
    (folder / "drawing.svg").write_bytes(SVG)
    return sorted(folder.iterdir())


def _image_corrupt(folder: Path) -> Path:
    path = folder / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"this is not the rest of a png")
    return path


def _light_curve_samples(folder: Path) -> list[Path]:
    """Unsorted rows, bands by name and by index, a single-band file without a band column, an
    extra `detected` column and padded cells, and a series longer than max_points."""
    rng = np.random.default_rng(0)
    (folder / "unsorted.csv").write_text(
        "time,band,flux,flux_err\n" + "\n".join(
            f"{t:.3f},{'ugrizy'[i % 6]},{f:.3f},1.5" for i, (t, f) in
            enumerate(zip(rng.uniform(0, 300, 40), rng.normal(50, 20, 40), strict=True))) + "\n")
    (folder / "indices.csv").write_text(
        "time, band, flux, flux_err, detected\n" + "\n".join(
            f"{t:.2f}, {i % 3}, {-f:.2f}, 0.5, {i % 2}" for i, (t, f) in
            enumerate(zip(np.arange(30) * 2.5, rng.normal(5, 2, 30), strict=True))) + "\n")
    (folder / "single_band.csv").write_text(
        "time,flux,flux_err\n" + "".join(f"{t},{np.sin(t / 5):.4f},0.1\n" for t in range(25)))
    (folder / "long.csv").write_text(
        "time,band,flux,flux_err\n" + "".join(f"{t / 2},r,{t % 7},1\n" for t in range(900)))
    return sorted(folder.glob("*.csv"))


def _light_curve_corrupt(folder: Path) -> Path:
    path = folder / "no_errors.csv"
    path.write_text("time,band,flux\n1,g,2\n2,g,3\n")
    return path


# Per modality: (sample raw files, one corrupt raw file), written into a folder.
SAMPLES = {"image": (_image_samples, _image_corrupt),
           "light_curve": (_light_curve_samples, _light_curve_corrupt)}
NAMES = MODALITIES.names()


@pytest.fixture(params=NAMES)
def kind(request):
    """(modality, its settings from the repository's params.yaml)."""
    name = request.param
    assert name in SAMPLES, f"modality '{name}' has no sample files in this test; add a maker to SAMPLES"
    modality = modality_of(name)
    return modality, modality.settings(_repository_settings()[name])


def _repository_settings() -> dict:
    """Settings per kind of data, from the domains of the repository's params.yaml."""
    from fewshot.data.sources import SOURCES

    domains = yaml.safe_load((ROOT / "params.yaml").read_text())["domains"]
    return {SOURCES.get(d["source"]).modality: d["settings"] for d in domains.values()}


def test_every_modality_has_samples_and_repository_settings():
    assert NAMES and set(NAMES) == set(SAMPLES) == set(_repository_settings())


def test_inference_reads_a_file_exactly_as_curation_stored_it(kind, tmp_path):
    """`decode([store(f)])[0]` == `read(f)`, value for value and dtype, for each sample file:
    otherwise a model would see other inputs at inference than in training."""
    modality, settings = kind
    for path in SAMPLES[modality.name][0](tmp_path):
        stored = modality.store(path, settings)
        assert isinstance(stored, bytes)
        decoded = modality.decode([stored])[0]
        read = torch.as_tensor(modality.read(path, settings))
        assert decoded.dtype == read.dtype and decoded.shape == read.shape, path.name
        assert torch.equal(decoded, read), path.name


def test_samples_are_not_trivial(kind, tmp_path):
    """Guard for the test above: the sample files give different inputs, none of them blank."""
    modality, settings = kind
    inputs = [torch.as_tensor(modality.read(p, settings)) for p in SAMPLES[modality.name][0](tmp_path)]
    blank = torch.as_tensor(modality.blank(settings))[0]
    assert all(not torch.equal(x, blank) for x in inputs)
    assert all(not torch.equal(a, b) for i, a in enumerate(inputs) for b in inputs[i + 1 :])


def test_blank_is_a_batch_of_one_that_collates_with_read(kind, tmp_path):
    modality, settings = kind
    path = SAMPLES[modality.name][0](tmp_path)[0]
    one = np.asarray(modality.read(path, settings))
    blank = np.asarray(modality.blank(settings))
    assert blank.shape[0] == 1 and blank.shape[2:] == one.shape[1:] and blank.dtype == one.dtype
    assert modality.collate([one, blank[0]]).shape[0] == 2
    twice = modality.decode([modality.store(path, settings)] * 2)
    assert np.array_equal(twice.numpy(), modality.collate([one, one]))


def test_columns_are_the_ones_its_expectations_check(kind, tmp_path):
    """The derived columns of a stored item (and of a missing one) are exactly the columns its
    expectations name; a stored item meets each range expectation and a missing item fails one."""
    import great_expectations as gx  # seconds to import: only here

    modality, settings = kind
    stored = modality.store(SAMPLES[modality.name][0](tmp_path)[0], settings)
    expectations = modality.expectations(gx, settings)
    checked = {e.column for e in expectations}
    present, missing = modality.columns(stored), modality.columns(None)
    assert set(present) == checked and set(missing) == checked

    def meets(e, value) -> bool:
        low, high = getattr(e, "min_value", None), getattr(e, "max_value", None)
        return (low is None or value >= low) and (high is None or value <= high)

    assert all(meets(e, present[e.column]) for e in expectations)
    assert not all(meets(e, missing[e.column]) for e in expectations)


def test_settings_refuse_an_unknown_key_naming_it(kind):
    modality, settings = kind
    raw = modality.settings_dict(settings)
    assert modality.settings(raw) == settings  # round trip of what a trained model records
    with pytest.raises(UserError, match=rf"unknown params key '{modality.name}\.settings\.sizee'"):
        modality.settings(raw | {"sizee": 1})


def test_verify_refuses_a_corrupt_file_naming_it(kind, tmp_path):
    modality, settings = kind
    makers = SAMPLES[modality.name]
    for path in makers[0](tmp_path):
        modality.verify(path)  # every good sample passes
    bad = makers[1](tmp_path)
    with pytest.raises(UserError, match=str(bad.name)) as err:
        modality.verify(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(UserError, match=str(bad.name)):
        modality.store(bad, settings)
    with pytest.raises(UserError, match=str(bad.name)):
        modality.read(bad, settings)
