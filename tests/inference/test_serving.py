"""Serving through MLflow: the logged pyfunc model answers like fewshot-predict, through
`mlflow models predict` and over HTTP from `mlflow models serve` on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from fewshot.inference import trained as inference
from fewshot.inference.predict import predict
from fewshot.inference.serving import PATH_ROOT_ENV, _query_files, log_model
from fewshot.inference.support import SupportSet, from_folder
from fewshot.tools.shapes import make_image_folder
from tests.conftest import free_port, http_server, save_model

pytestmark = pytest.mark.slow
MLFLOW = str(Path(sys.executable).parent / "mlflow")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving")
    cwd = os.getcwd()
    os.chdir(tmp)  # no params.yaml: default image size and templates, as for the CLI
    yield _log(tmp)
    os.chdir(cwd)


def _log(tmp: Path) -> dict:
    model = save_model(tmp / "m1")
    trained = inference.load(str(model))
    support = from_folder(trained, make_image_folder(tmp / "support", n_classes=4, per_class=2))
    support.save(tmp / "s.safetensors")
    files = sorted(make_image_folder(tmp / "queries", 4, 3).glob("class_*/item_2.png"))
    (tmp / "bad.png").write_text("not an image")
    files.append(tmp / "bad.png")
    uri = f"sqlite:///{tmp}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        model_uri = log_model(str(model), tmp / "s.safetensors", threshold=0.0)
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    expected = predict(trained, SupportSet.load(tmp / "s.safetensors", trained), files)
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
    return {"tmp": tmp, "uri": model_uri, "files": files, "expected": expected, "env": env}


def check_same(rows: list[dict], expected: list[dict]) -> None:
    assert len(rows) == len(expected)
    for row, answer in zip(rows, expected, strict=True):
        if "error" in answer:
            assert row["error"] and row["label"] == ""
            continue
        assert row["error"] == "" and row["label"] == answer["label"]
        assert row["probability"] == pytest.approx(answer["probability"], abs=1e-6)
        assert json.loads(row["probabilities"]) == pytest.approx(answer["probabilities"], abs=1e-6)


def test_mlflow_models_predict_answers_like_fewshot_predict(logged):
    tmp = logged["tmp"]
    request = {"dataframe_split": {"columns": ["path"], "data": [[str(f)] for f in logged["files"]]}}
    (tmp / "in.json").write_text(json.dumps(request))
    done = subprocess.run([MLFLOW, "models", "predict", "-m", logged["uri"], "-i", "in.json",
                           "-t", "json", "--env-manager", "local", "-o", "out.json"], cwd=tmp,
                          env=logged["env"] | {PATH_ROOT_ENV: str(tmp)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    check_same(json.loads((tmp / "out.json").read_text())["predictions"], logged["expected"])


def test_served_model_answers_over_http_on_loopback(logged):
    port = free_port()
    cmd = [MLFLOW, "models", "serve", "-m", logged["uri"], "-h", "127.0.0.1", "-p", str(port),
           "--env-manager", "local", "--workers", "1"]
    images = [base64.b64encode(f.read_bytes()).decode() for f in logged["files"]]
    body = json.dumps({"dataframe_split": {"columns": ["image"], "data": [[i] for i in images]}})
    os.environ["MLFLOW_TRACKING_URI"] = logged["env"]["MLFLOW_TRACKING_URI"]
    try:
        with http_server(cmd, port, "/ping", logged["tmp"] / "serve.log"):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as answer:
                rows = json.loads(answer.read())["predictions"]
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    check_same(rows, logged["expected"])


def test_fewshot_predict_takes_the_logged_model_uri(logged):
    done = subprocess.run([str(Path(sys.executable).parent / "fewshot-predict"), "--model",
                           logged["uri"], *map(str, logged["files"])], cwd=logged["tmp"],
                          env=logged["env"], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-2000:]  # the bad query: answered with an error line
    lines = done.stdout.strip().splitlines()
    assert [line.split("\t")[1] for line in lines[:-1]] == [
        a["label"] for a in logged["expected"][:-1]]
    assert "\terror: " in lines[-1]


def test_a_registered_name_or_alias_that_does_not_exist_is_one_line(logged):
    done = subprocess.run([str(Path(sys.executable).parent / "fewshot-predict"), "--model",
                           "models:/fewshot-nothing@champion", "--classes", "names.txt", "q.png"],
                          cwd=logged["tmp"], env=logged["env"], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: no logged model at 'models:/fewshot-nothing@champion'")


def test_path_queries_are_refused_unless_inside_the_configured_folder(tmp_path):
    allowed = tmp_path / "queries"
    allowed.mkdir()
    (allowed / "q.png").write_bytes(b"x")
    (allowed / "escape.png").symlink_to("/etc/hostname")
    frame = pd.DataFrame({"path": [str(allowed / "q.png"), "q.png", "/etc/passwd", "/etc/no-such-file",
                                   "../../etc/passwd", str(allowed / "escape.png"), "nul\x00byte.png"]})
    files, errors = _query_files(frame, tmp_path, path_root=None)
    assert sorted(errors) == list(range(7)) and "'path' input is off" in errors[0]
    assert all(f.parent == tmp_path and f.read_bytes() == b"" for f in files)  # nothing read
    files, errors = _query_files(frame, tmp_path, path_root=allowed.resolve())
    assert files[:2] == [(allowed / "q.png").resolve()] * 2
    # existing and missing files outside are refused alike: no probing of the server's files
    assert sorted(errors) == [2, 3, 4, 5, 6]
    assert len({message.split(": ", 1)[1] for message in errors.values()}) == 1
