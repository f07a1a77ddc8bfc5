"""Exported models (ONNX Runtime): the same answers as PyTorch for every method and both kinds of
data, int8 quantisation, the cache of `--runtime onnx`, the CLIs, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from fewshot.core.errors import UserError
from fewshot.inference import exported
from fewshot.inference import trained as inference
from fewshot.inference.predict import Predictor, Processed, answering, predict
from fewshot.inference.support import from_folder
from fewshot.tools.series import make_series_folder
from fewshot.tools.shapes import make_image_folder
from tests.conftest import save_model


@pytest.fixture
def images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml: the model artefact says everything
    monkeypatch.setenv(exported.CACHE_ENV, str(tmp_path / "cache"))
    support = make_image_folder(tmp_path / "support", n_classes=4, per_class=2)
    queries = make_image_folder(tmp_path / "queries", n_classes=4, per_class=4)
    return {"tmp": tmp_path, "support": support, "files": sorted(queries.glob("class_*/item_*.png"))}


def _both(trained, support, files, runtime_model) -> tuple[np.ndarray, np.ndarray]:
    """(PyTorch, ONNX Runtime) probabilities of `files`."""
    reference = Predictor(Processed(trained, support))(files)
    answers = Predictor(runtime_model)(files)
    assert [a["label"] for a in answers] == [a["label"] for a in reference]
    as_array = lambda found: np.array([list(a["probabilities"].values()) for a in found])  # noqa: E731
    return as_array(reference), as_array(answers)


@pytest.mark.parametrize(("method", "backbone"), [
    ("protonet", "efficientnet_lite0"), ("siamese", "mobilenet_v2"), ("zero_shot", "mobilenet_v2"),
    ("conse", "efficientnet_lite0"), ("multimodal", "mobilenet_v2")])
def test_every_image_method_exports_and_answers_as_pytorch_does(images, method, backbone):
    """Frozen backbones (features, then the method); the light-curve test below has the backbone
    inside the method (trained with it)."""
    trained = inference.load(str(save_model(images["tmp"] / method, method=method, backbone=backbone)))
    support = from_folder(trained, images["support"])
    out = images["tmp"] / f"{method}.onnx"
    meta = exported.export(trained, support, out)
    reference, onnx_answers = _both(trained, support, images["files"], exported.load(out))
    assert np.abs(reference - onnx_answers).max() < 1e-4
    assert meta["classes"] == support.classes and meta["support_sha256"] == exported.support_sha256(support)
    assert meta["provenance"]["model_sha256"] == trained.sha256 and meta["quantize"] == "none"


@pytest.mark.parametrize("method", ["protonet", "zero_shot"])
def test_light_curve_models_export_with_the_series_length_left_free(tmp_path, monkeypatch, method):
    monkeypatch.chdir(tmp_path)
    trained = inference.load(str(save_model(tmp_path / "lc", method=method, backbone="lc_cnn")))
    support = from_folder(trained, make_series_folder(tmp_path / "support", 3, 2))
    files = sorted(make_series_folder(tmp_path / "queries", 3, 3).glob("class_*/*.csv"))
    lengths = {len(trained.read([f])[0][0]) for f in files}
    assert len(lengths) > 1  # the graph must take series of other lengths than it was traced with
    exported.export(trained, support, tmp_path / "lc.onnx")
    model = exported.load(tmp_path / "lc.onnx")
    reference, onnx_answers = _both(trained, support, files, model)
    assert np.abs(reference - onnx_answers).max() < 1e-4
    one = Predictor(model, batch_size=1)(files)  # each series alone: unpadded, its own length
    assert np.abs(np.array([list(a["probabilities"].values()) for a in one]) - reference).max() < 1e-4


def test_static_int8_is_smaller_stays_close_to_fp32_and_keeps_the_support_arithmetic_fp32(images):
    trained = inference.load(str(save_model(images["tmp"] / "m")))
    support = from_folder(trained, images["support"])
    plain, static = images["tmp"] / "fp32.onnx", images["tmp"] / "static.onnx"
    exported.export(trained, support, plain)
    calibration = exported.inputs_of_folder(trained.modality, trained.settings, images["support"])
    meta = exported.export(trained, support, static, "static", calibration)
    assert meta["quantize"] == "static" and meta["calibration_inputs"] == 8
    nodes = onnx.load(str(static)).graph.node
    producer = {output: n.op_type for n in nodes for output in n.output}
    int8 = [n for n in nodes if n.op_type in ("Conv", "Gemm", "MatMul")  # int8 weights
            and producer.get(n.input[1]) == "DequantizeLinear"]
    convolutions = [n for n in nodes if n.op_type == "Conv"]
    assert len([n for n in int8 if n.op_type == "Conv"]) == len(convolutions) - 2 > 0  # not 1st, last
    assert all(n.name.count("/") >= 3 for n in int8)  # inside a layer, not the method's arithmetic
    assert "/method/head/Gemm" in {n.name for n in int8}
    assert static.stat().st_size < 0.6 * plain.stat().st_size  # int8 weights: 4x fewer bytes
    raw = trained.read(images["files"])[0]
    fp32, quant = exported.load(plain).logits(raw), exported.load(static).logits(raw)
    # Close, not equal: the correlation of the logits over queries and classes (an untrained
    # 32 px model; a broken graph gives ~0). What int8 costs on the real test episodes is measured
    # by benchmarks/onnx_inference.py.
    assert np.corrcoef(fp32.flatten(), quant.flatten())[0, 1] > 0.9
    with pytest.raises(UserError, match="quantize 'dynamic' is not one of static"):
        exported.export(trained, support, images["tmp"] / "d.onnx", "dynamic")


def test_runtime_onnx_exports_once_per_model_and_support_set(images):
    trained = inference.load(str(save_model(images["tmp"] / "m")))
    support = from_folder(trained, images["support"])
    first = answering(trained, support, "onnx")
    written = sorted((images["tmp"] / "cache").glob("*.onnx"))
    assert len(written) == 1 and first.path == written[0]
    stamp = written[0].stat().st_mtime_ns
    assert answering(trained, support, "onnx").path == written[0]
    assert written[0].stat().st_mtime_ns == stamp  # reused, not exported again
    answering(trained, support.remove(["class 00"]), "onnx")
    assert len(list((images["tmp"] / "cache").glob("*.onnx"))) == 2
    assert [a["label"] for a in predict(trained, support, images["files"], runtime="onnx")] == \
        [a["label"] for a in predict(trained, support, images["files"])]


def _cli(tool: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    script = {"export": "fewshot.inference.export_command", "predict": "fewshot.inference.predict"}[tool]
    return subprocess.run([sys.executable, "-m", script, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ})


def test_export_then_predict_from_the_file_alone(images):
    tmp = images["tmp"]
    model = save_model(tmp / "m")
    done = _cli("export", "--model", model, "--support", images["support"], "--out", tmp / "m.onnx",
                cwd=tmp)
    assert done.returncode == 0, done.stderr
    assert "exported m (protonet, efficientnet_lite0) with 4 classes" in done.stderr
    queries = tmp / "queries"
    answered = _cli("predict", "--model", tmp / "m.onnx", queries / "class_01", "--json",
                    tmp / "a.json", cwd=tmp)
    assert answered.returncode == 0, answered.stderr
    written = json.loads((tmp / "a.json").read_text())
    assert written["model"]["runtime"] == "onnx" and written["classes"] == [f"class {c:02d}"
                                                                           for c in range(4)]
    trained = inference.load(str(model))
    expected = predict(trained, from_folder(trained, images["support"]),
                       sorted((queries / "class_01").iterdir()))
    assert [a["label"] for a in written["answers"]] == [a["label"] for a in expected]


@pytest.mark.parametrize(("args", "message"), [
    (["--support", "{support}"], "--support: an exported model's classes (and quantisation) are fixed"),
    (["--runtime", "torch"], "is an exported (ONNX) model: it runs in ONNX Runtime"),
])
def test_an_exported_model_refuses_what_would_change_it(images, args, message):
    tmp = images["tmp"]
    exported.export(*(lambda t: (t, from_folder(t, images["support"])))(
        inference.load(str(save_model(tmp / "m")))), tmp / "m.onnx")
    done = _cli("predict", "--model", tmp / "m.onnx",
                *[a.format(support=images["support"]) for a in args], images["files"][0], cwd=tmp)
    assert done.returncode == 2 and message in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_bad_export_input_gets_one_line(images):
    tmp = images["tmp"]
    (tmp / "not.onnx").write_text("nothing")
    with pytest.raises(UserError, match="is not an ONNX model ONNX Runtime can load"):
        exported.load(tmp / "not.onnx")
    with pytest.raises(UserError, match="does not exist; write one with fewshot-export"):
        exported.load(tmp / "missing.onnx")
    conv4 = inference.load(str(save_model(tmp / "c4", backbone="conv4")))
    with pytest.raises(UserError, match=r"model 'c4' \(protonet, conv4\) cannot be exported to ONNX: "
                                        r"SymbolicValueError: Unsupported: ONNX export of operator "
                                        r"adaptive_avg_pool2d"):  # resize, then adaptive pooling
        exported.export(conv4, from_folder(conv4, images["support"]), tmp / "c4.onnx")
    assert not (tmp / "c4.onnx").exists()
    model = save_model(tmp / "m")
    cases = [(["--quantize", "static", "--support-set", tmp / "none"], "needs inputs to calibrate"),
             (["--support", images["support"], "--out", tmp / "m.pt"], "must end in .onnx"),
             (["--support", images["support"], "--calibration", tmp], "--calibration is for "
                                                                       "--quantize static")]
    for extra, message in cases:
        args = ["--model", model, *extra] + ([] if "--out" in extra else ["--out", tmp / "o.onnx"])
        done = _cli("export", *args, cwd=tmp)
        assert done.returncode == 2 and message in done.stderr, (extra, done.stderr)
        assert not (tmp / "o.onnx").exists()


def test_a_model_served_with_runtime_onnx_answers_from_the_exported_graph(images, monkeypatch):
    """serving --runtime onnx logs the .onnx (no checkpoint, no support set) and answers with it."""
    import base64

    import mlflow.pyfunc
    import pandas as pd

    from fewshot.inference.serving import log_model

    tmp = images["tmp"]
    model = save_model(tmp / "m")
    trained = inference.load(str(model))
    support = from_folder(trained, images["support"])
    support.save(tmp / "s.safetensors")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
    uri = log_model(str(model), tmp / "s.safetensors", runtime="onnx")
    loaded = mlflow.pyfunc.load_model(uri)
    served = loaded.unwrap_python_model()
    assert served.trained is None and served.exported.meta["support_sha256"] == \
        exported.support_sha256(support)
    frame = pd.DataFrame({"image": [base64.b64encode(f.read_bytes()).decode() for f in images["files"]]})
    rows = loaded.predict(frame)
    expected = predict(trained, support, images["files"])
    assert list(rows["label"]) == [a["label"] for a in expected]
    assert np.allclose(rows["probability"], [a["probability"] for a in expected], atol=1e-4)
