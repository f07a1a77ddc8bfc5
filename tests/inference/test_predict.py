"""Inference: support sets from folders, saved and reloaded, edited; predictions; bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from fewshot.core.errors import UserError
from fewshot.data.class_folders import read_class_table
from fewshot.data.text import TextEncoder
from fewshot.inference import trained as inference
from fewshot.inference.predict import UNKNOWN, _format, predict
from fewshot.inference.predict import main as predict_main
from fewshot.inference.support import SupportSet, from_classes, from_folder
from fewshot.tools.shapes import make_image_folder
from tests.conftest import save_model


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml: the model artefact says everything
    support = make_image_folder(tmp_path / "support", n_classes=4, per_class=2)
    queries = make_image_folder(tmp_path / "queries", n_classes=4, per_class=3)
    files = sorted(queries.glob("class_*/item_2.png"))
    return {"tmp": tmp_path, "support": support, "files": files,
            "trained": inference.load(str(save_model(tmp_path / "m1")))}


def test_support_folder_answers_every_query_with_calibrated_probabilities(setup, encoder):
    trained = setup["trained"]
    support = from_folder(trained, setup["support"], encoder=encoder)
    assert support.classes == [f"class {c:02d}" for c in range(4)]  # as ingest names them
    assert support.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and len(support.items) == 8
    assert support.descriptions[1] == "a large blue square"  # from the folder's classes.csv
    answers = predict(trained, support, setup["files"])
    assert len(answers) == 4
    for answer in answers:
        assert answer["label"] in support.classes and answer["label"] == answer["top_class"]
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert answer["probability"] == max(answer["probabilities"].values())
    certain = predict(trained, support, setup["files"], threshold=1.0)
    assert {a["label"] for a in certain} == {UNKNOWN}


def test_saved_support_set_reloads_without_images_and_answers_the_same(setup, encoder):
    trained = setup["trained"]
    support = from_folder(trained, setup["support"], encoder=encoder)
    support.save(setup["tmp"] / "s.safetensors")
    shutil.rmtree(setup["support"])  # reloading must not need the images
    again = SupportSet.load(setup["tmp"] / "s.safetensors", trained)
    assert again.classes == support.classes and torch.equal(again.inputs, support.inputs)
    assert predict(trained, again, setup["files"]) == predict(trained, support, setup["files"])


def test_removing_and_adding_classes_equals_building_the_set_directly(setup, encoder):
    trained, folder = setup["trained"], setup["support"]
    full = from_folder(trained, folder, encoder=encoder)
    extra = setup["tmp"] / "extra"
    extra.mkdir()
    shutil.move(folder / "class_03", extra / "class_03")
    three = from_folder(trained, folder, encoder=encoder)
    removed = full.remove(["class_03"])
    assert removed.classes == three.classes and torch.equal(removed.inputs, three.inputs)
    assert predict(trained, removed, setup["files"]) == predict(trained, three, setup["files"])
    merged = three.merge(from_folder(trained, extra, encoder=encoder))
    assert merged.classes == full.classes and merged.labels.tolist() == full.labels.tolist()
    assert torch.allclose(merged.inputs, full.inputs, atol=1e-5)
    with pytest.raises(UserError, match=r"class\(es\) \['class 00'\] are already"):
        full.merge(from_folder(trained, folder, encoder=encoder).remove(["class_01", "class_02"]))
    with pytest.raises(UserError, match="cannot remove class"):
        full.remove(["class_99"])


def test_support_set_of_another_model_or_backbone_is_refused(setup, encoder):
    support = from_folder(setup["trained"], setup["support"], encoder=encoder)
    support.save(setup["tmp"] / "s.safetensors")
    retrained = inference.load(str(save_model(setup["tmp"] / "m2", seed=1)))
    with pytest.raises(UserError, match="was made by model 'm1' .*model_sha256"):
        SupportSet.load(setup["tmp"] / "s.safetensors", retrained)
    other = inference.load(str(save_model(setup["tmp"] / "m3", backbone="mobilenet_v2")))
    with pytest.raises(UserError, match=r"\(backbone efficientnet_lite0\) .* \(backbone mobilenet_v2\)"):
        SupportSet.load(setup["tmp"] / "s.safetensors", other)
    (setup["tmp"] / "junk.safetensors").write_bytes(b"not a support set")
    with pytest.raises(UserError, match="is not a saved support set"):
        SupportSet.load(setup["tmp"] / "junk.safetensors", setup["trained"])


def test_bad_queries_get_one_line_each_and_the_rest_are_answered(setup, encoder):
    tmp = setup["tmp"]
    (tmp / "notes.txt").write_text("not an image")
    good = setup["files"][0].read_bytes()
    (tmp / "truncated.png").write_bytes(good[: len(good) // 2])
    Image.new("L", (50, 30), 90).save(tmp / "grey.png")
    Image.new("RGBA", (20, 20), (255, 0, 0, 100)).save(tmp / "rgba.png")
    Image.new("RGB", (3000, 2000), (10, 200, 30)).save(tmp / "huge.jpg")
    Image.new("I;16", (40, 40), 1000).save(tmp / "sixteen_bit.png")
    files = [tmp / "notes.txt", tmp / "truncated.png", tmp / "grey.png", tmp / "rgba.png",
             tmp / "huge.jpg", tmp / "sixteen_bit.png", tmp / "missing.png", setup["files"][0]]
    support = from_folder(setup["trained"], setup["support"], encoder=encoder)
    answers = predict(setup["trained"], support, files, batch_size=3)
    errors = {Path(a["query"]).name: a["error"] for a in answers if "error" in a}
    assert set(errors) == {"notes.txt", "truncated.png", "missing.png"}
    assert all("\n" not in e and Path(name).stem in e for name, e in errors.items())
    assert all("label" in a for a in answers if "error" not in a)


def test_bad_support_folders_are_one_line_errors(setup, encoder):
    trained, folder = setup["trained"], setup["support"]
    (folder / "class_09").mkdir()
    with pytest.raises(UserError, match="class folder '.*class_09' is empty"):
        from_folder(trained, folder, encoder=encoder)
    (folder / "class_09" / "broken.png").write_text("broken")
    with pytest.raises(UserError, match=r"\['class_09'\] hold no readable example"):
        from_folder(trained, folder, encoder=encoder)
    (folder / "class_09" / "broken.png").unlink()
    (folder / "class_09").rmdir()
    (folder / "class_00" / "notes.txt").write_text("a stray file")
    support = from_folder(trained, folder, encoder=encoder)
    assert len(support.warnings) == 1 and "notes.txt" in support.warnings[0]
    with pytest.raises(UserError, match="has no class sub-folders"):
        from_folder(trained, folder / "class_00", encoder=encoder)


def test_zero_shot_from_class_names_and_a_support_method_refuses_them(setup, encoder):
    (setup["tmp"] / "names.txt").write_text("red apple\nbanana\n\ncat\n")
    zero = inference.load(str(save_model(setup["tmp"] / "zs", method="zero_shot")))
    names = from_classes(zero, setup["tmp"] / "names.txt", encoder=encoder)
    assert names.classes == ["red apple", "banana", "cat"] and len(names.inputs) == 0
    answers = predict(zero, names, setup["files"])
    assert all(a["label"] in names.classes for a in answers)
    proto = setup["trained"]
    with pytest.raises(UserError, match="needs examples of every class: give --support DIR"):
        predict(proto, from_classes(proto, setup["tmp"] / "names.txt", encoder=encoder), setup["files"])


def test_command_writes_json_and_exits_1_when_a_query_failed(setup):
    tmp = setup["tmp"]
    (tmp / "bad.png").write_text("no")
    cmd = [str(Path(sys.executable).parent / "fewshot-predict"), "--model", str(tmp / "m1"),
           "--support", str(setup["support"]), "--save-support", "s.safetensors", "--json", "a.json",
           str(setup["files"][0]), str(tmp / "bad.png")]
    done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and "\terror: cannot read image" in lines[1]
    written = json.loads((tmp / "a.json").read_text())
    assert written["classes"] == [f"class {c:02d}" for c in range(4)]
    assert written["answers"][0]["label"] == lines[0].split("\t")[1]
    assert written["model"]["backbone"] == "efficientnet_lite0"
    again = subprocess.run(cmd[:3] + ["--support-set", "s.safetensors", "--threshold", "2"],
                           cwd=tmp, capture_output=True, text=True)
    assert again.returncode == 2
    assert again.stderr.strip() == "error: --threshold 2.0 must be a probability in [0, 1]"


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_a_temperature_that_is_not_a_positive_number_is_refused(value, capsys, monkeypatch):
    """-1 once reversed the ranking (exit 0); 0 gave NaN probabilities and JSON parsers reject NaN."""
    monkeypatch.setattr(sys, "argv", ["fewshot-predict", "--model", "protonet", "--temperature", value,
                                      "q.png"])
    with pytest.raises(SystemExit) as stop:
        predict_main()
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: --temperature {float(value)} must be a finite "
                                              "number > 0")


def _tamper(path: Path, out: Path, tensors: dict | None = None, **meta) -> Path:
    from fewshot.core.fileio import load_tensors, save_tensors

    saved, saved_meta = load_tensors(path)
    save_tensors(out, saved | (tensors or {}), {k: v for k, v in (saved_meta | meta).items()
                                                if v is not None})
    return out


def test_a_crafted_support_set_is_refused_in_one_line(setup, encoder):
    tmp, trained = setup["tmp"], setup["trained"]
    good = tmp / "good.safetensors"
    from_folder(trained, setup["support"], encoder=encoder).save(good)
    crafted = {
        "negative label": ({"labels": torch.tensor([-1, 0, 1, 1, 2, 2, 3, 3])}, {}),
        "label too large": ({"labels": torch.tensor([0, 0, 1, 1, 2, 2, 3, 9])}, {}),
        "fewer descriptions": ({}, {"descriptions": ["a"]}),
        "classes not names": ({}, {"classes": [1, 2, 3, 4]}),
        "no provenance": ({}, {"provenance": None}),
        "float labels": ({"labels": torch.zeros(8)}, {}),
    }
    for case, (tensors, meta) in crafted.items():
        path = _tamper(good, tmp / f"{case.replace(' ', '_')}.safetensors", tensors, **meta)
        with pytest.raises(UserError, match=rf"support set '.*{path.name}' is damaged: .*; save it "
                                            "again with --save-support"):
            SupportSet.load(path, trained)


def test_names_with_tabs_or_newlines_keep_one_answer_per_line():
    answer = {"query": "a\tb.png", "label": "x\ny", "top_class": "x\ny", "probability": 0.9,
              "probabilities": {"x\ny": 0.9, "z": 0.1}}
    line = _format(answer)
    assert "\n" not in line and line.split("\t") == ["a\\tb.png", "x\\ny", "0.900", "(x\\ny 0.900, z 0.100)"]


def test_class_names_from_a_classes_file_are_read_as_ingest_reads_folders(setup, encoder):
    (setup["tmp"] / "names.csv").write_text("class_name,description\ndigit_4,a four\nred apple,\n")
    zero = inference.load(str(save_model(setup["tmp"] / "zs", method="zero_shot")))
    names = from_classes(zero, setup["tmp"] / "names.csv", encoder=encoder)
    assert names.classes == ["digit 4", "red apple"] and names.descriptions == ["a four", ""]


def test_class_texts_use_every_field_the_model_was_trained_with(tmp_path, encoder):
    """Support sets once blanked category/subcategory, which training's templates had filled in."""
    from fewshot.data.text import class_embeddings
    from fewshot.inference.support import text_embeddings

    templates = ["{name}", "an icon showing {name}, category {category}"]
    (tmp_path / "classes.csv").write_text("class_name,description,category\ncat,,animals\ndog,,animals\n")
    table = read_class_table(tmp_path / "classes.csv")
    ours = text_embeddings(table, templates, encoder)
    assert torch.allclose(ours, class_embeddings(encoder, table, templates)[0])
    blanked = text_embeddings(table.assign(category=""), templates, encoder)
    assert not torch.allclose(ours, blanked, atol=1e-3)
