"""A trained model as a self-contained artefact: loading it (and refusing what is not one), reading
queries as curation stored items, the temperature bound to its checkpoint."""

from __future__ import annotations

import pickle

import pytest
import torch
from PIL import Image

from fewshot.core.errors import UserError
from fewshot.inference import trained as inference
from fewshot.modalities import image as images
from fewshot.modalities.image import read_image
from fewshot.models import checkpoint
from tests.conftest import ROOT, save_model


def test_image_over_the_decompression_limit_is_refused_not_decoded(tmp_path, monkeypatch):
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 px > 2 x limit
    with pytest.raises(UserError, match="'.*big.png' is too large to decode safely"):
        read_image(tmp_path / "big.png", 32)


def test_query_pixels_equal_curation_of_the_same_file(tmp_path):
    Image.new("RGBA", (50, 30), (200, 10, 10, 120)).save(tmp_path / "q.png")
    Image.new("L", (31, 64), 77).save(tmp_path / "g.png")
    for name in ("q.png", "g.png"):
        curated = images.decode(images.normalise(tmp_path / name, 32)).transpose(2, 0, 1)
        assert (read_image(tmp_path / name, 32) == curated).all()


def test_a_model_file_that_is_not_a_checkpoint_is_one_line(tmp_path):
    real = save_model(tmp_path / "real").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(real[: len(real) // 2])
    (tmp_path / "text.pt").write_text("not a model")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    torch.save({"spec": {"method": "protonet", "evil": 1}, "state": {}, "info": {}}, tmp_path / "odd.pt")
    torch.save({"spec": {}, "state": {}, "info": {}}, tmp_path / "empty.pt")
    torch.save({"spec": {"method": "protonet", "backbone": "efficientnet_lite0", "head_dim": 4},
                "state": [], "info": {}}, tmp_path / "nostate.pt")
    (tmp_path / "code.pt").write_bytes(pickle.dumps(Image.Image))  # pickled code: refused unread
    for name in ("truncated.pt", "text.pt", "list.pt", "odd.pt", "code.pt", "empty.pt", "nostate.pt"):
        with pytest.raises(UserError, match=rf"'.*{name}' is not a .*model checkpoint.*; expected a "
                                            "model.pt written by a train stage") as refused:
            inference.load(str(tmp_path / name))
        assert "weights_only" not in str(refused.value)
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(UserError, match=r"cannot read model file '.*folder.pt'"):
        checkpoint.load(tmp_path / "folder.pt", on_features=True)


def test_the_model_artefact_not_params_yaml_decides_how_queries_are_read(tmp_path, monkeypatch):
    """The repository's params.yaml (128 px, its templates) in the current directory changes
    nothing: the model says 48 px and one template."""
    path = save_model(tmp_path / "m", size=48, templates=["{name}"])
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    trained = inference.load(str(path))
    assert trained.settings.size == 48 and trained.templates == ["{name}"]
    Image.new("RGB", (100, 60), "red").save(tmp_path / "q.png")
    raw, ok, errors = trained.read([tmp_path / "q.png", tmp_path / "missing.png"])
    assert raw.shape == (1, 3, 48, 48) and ok == [0] and "missing.png" in errors[1]
    assert trained.provenance["settings"] == {"size": 48} and trained.temperature == 1.0


def test_the_fitted_temperature_applies_only_to_the_checkpoint_it_was_fitted_for(tmp_path):
    from fewshot.core import paths
    from fewshot.core.fileio import sha256_file, write_json

    path = save_model(tmp_path / "protonet")
    calibration = paths.calibration_file(path)
    assert calibration == tmp_path / "protonet.calibration.json"
    write_json(calibration, {"model_sha256": sha256_file(path), "temperature": 2.5})
    assert inference.load(str(path)).temperature == 2.5
    write_json(calibration, {"model_sha256": "0" * 64, "temperature": 2.5})  # another checkpoint's
    assert inference.load(str(path)).temperature == 1.0
    assert inference.load(str(path), temperature=0.5).temperature == 0.5
