"""A trained method plus a support set as an MLflow pyfunc model: `mlflow models predict/serve`.

Usage:
  python -m fewshot.inference.serving --model protonet --support-set my.support.safetensors [--threshold 0.5]
      [--runtime onnx [--quantize static --calibration DIR]]

logs one MLflow run (tracking URI as for the pipeline: the project's mlflow.db, or
MLFLOW_TRACKING_URI) holding the model and prints its URI, e.g. `runs:/<run id>/model`. Then

  mlflow models predict -m runs:/<run id>/model -i queries.json -t json --env-manager local
  mlflow models serve -m runs:/<run id>/model -h 127.0.0.1 -p 5001 --env-manager local

Input: a table with a column named by the model's modality (`image` for images: base64-encoded
file bytes) or `path` (files on
the server: refused unless the operator sets FEWSHOT_SERVING_PATH_ROOT=DIR where the server starts,
and then only files inside DIR, symbolic links resolved; so callers can neither probe nor read the
server's other files). Loading a logged model runs the code file logged with it (MLflow's models
from code; nothing is unpickled): load models only from a tracking server you trust. Output: one
row per query with `label` (a class or "unknown"), `top_class`, `probability`, `probabilities`
(JSON: class -> probability) and `error` (empty when the query was answered) — the same answers as
`fewshot-predict`. With `--runtime onnx` the logged model is the exported ONNX file (`fewshot-export`:
backbone, head and support set in one graph) and the server answers with ONNX Runtime.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from fewshot.core.errors import UserError, one_line_errors
from fewshot.core.tracking import PythonModel
from fewshot.inference import trained as inference
from fewshot.inference.arguments import quantize_arguments
from fewshot.inference.predict import Predictor, Processed
from fewshot.inference.support import SupportSet

LOGGED_MODEL = Path(__file__).with_name("logged_model.py")  # what MLflow runs to rebuild the model
COLUMNS = ["label", "top_class", "probability", "probabilities", "error"]
PATH_ROOT_ENV = "FEWSHOT_SERVING_PATH_ROOT"


class FewShotModel(PythonModel):
    """Loads the checkpoint, its calibration and the support set once; answers batches of queries."""

    def load_context(self, context) -> None:
        config = json.loads(Path(context.artifacts["config"]).read_text())
        self.threshold = config["threshold"]
        if "exported" in context.artifacts:  # --runtime onnx: the exported graph is the model
            from fewshot.inference import exported

            self.trained = self.support = None
            self.exported = exported.load(Path(context.artifacts["exported"]), config["temperature"])
            model = self.exported
        else:
            self.exported = None
            self.trained = inference.load(context.artifacts["model"], config.get("temperature"),
                                          config["name"])
            # A model logged by train@ has no classes yet (a registered one gets them from
            # `fewshot-predict --support/--classes`); serving's models bring their support set.
            self.support = (SupportSet.load(Path(context.artifacts["support"]), self.trained)
                            if "support" in context.artifacts else None)
            model = Processed(self.trained, self.support) if self.support is not None else None
        self.predictor = Predictor(model, self.threshold) if model is not None else None
        root = os.environ.get(PATH_ROOT_ENV)
        self.path_root = Path(root).resolve() if root else None

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        if self.predictor is None:
            raise UserError(f"model '{self.trained.name}' was logged without classes (by its train "
                            "stage): give them to `fewshot-predict --model URI --support DIR`, or "
                            "log a servable copy with `python -m fewshot.inference.serving "
                            "--support-set FILE`")
        frame = pd.DataFrame(model_input)
        with tempfile.TemporaryDirectory() as folder:
            files, decode_errors = _query_files(frame, Path(folder), self.path_root,
                                                self.predictor.model.modality.payload)
            answers = self.predictor(files)
        rows = []
        for index, answer in enumerate(answers):
            error = decode_errors.get(index) or answer.get("error", "")
            if error:
                rows.append({"label": "", "top_class": "", "probability": float("nan"),
                             "probabilities": "{}", "error": error})
            else:
                rows.append({"label": answer["label"], "top_class": answer["top_class"],
                             "probability": answer["probability"],
                             "probabilities": json.dumps(answer["probabilities"]), "error": ""})
        return pd.DataFrame(rows, columns=COLUMNS)


def _query_files(frame: pd.DataFrame, folder: Path, path_root: Path | None = None,
                 payload: str = "image") -> tuple[list[Path], dict[int, str]]:
    """The queries as files: the `payload` column (base64) decoded into `folder`; `path` only
    inside `path_root`.

    A refused query becomes an error row (an empty stand-in file in `folder`). The refusal
    is decided before the file system is touched, so it says nothing about whether a file exists.
    """
    if "path" in frame:
        files, errors = [], {}
        for index, given in enumerate(frame["path"]):
            files.append(folder / f"refused_{index}")  # an empty stand-in unless accepted below
            if path_root is None:
                errors[index] = (f"query {index}: 'path' input is off on this server; send the file "
                                 f"bytes as '{payload}' (base64), or start the server with "
                                 f"{PATH_ROOT_ENV}=DIR to allow files inside DIR")
            elif (resolved := _inside(path_root, str(given))) is None:
                errors[index] = f"query {index}: path is outside the folder this server may read"
            else:
                files[-1] = resolved
        for index in errors:
            files[index].write_bytes(b"")
        return files, errors
    if payload not in frame:
        raise UserError(f"input columns {list(frame.columns)}: expected '{payload}' (base64 file "
                        "bytes) or 'path'")
    files, errors = [], {}
    for index, encoded in enumerate(frame[payload]):
        path = folder / f"query_{index}"
        try:
            path.write_bytes(base64.b64decode(str(encoded), validate=True))
        except (binascii.Error, ValueError):
            errors[index] = f"query {index}: '{payload}' is not valid base64"
            path.write_bytes(b"")
        files.append(path)
    return files, errors


def _inside(root: Path, given: str) -> Path | None:
    """`given` (relative to `root`, or absolute) resolved, if it lies inside `root`; else None."""
    try:
        resolved = (root / given).resolve()
    except (ValueError, OSError):  # a NUL byte, a symlink loop
        return None
    return resolved if resolved.is_relative_to(root) else None


def log_model(model: str, support_set: Path, threshold: float = 0.0,
              experiment: str = "fewshot-serving", runtime: str = "torch",
              quantize: str | None = None, calibration: Path | None = None) -> str:
    """Log the model + support set as a pyfunc model in a new MLflow run; return its model URI.
    `runtime` onnx logs the exported graph instead (`quantize`d, static calibrated on the
    `calibration` folder's inputs)."""
    from fewshot.core.tracking import mlflow_run

    trained = inference.load(model)
    support = SupportSet.load(support_set, trained)  # refuse another model's set before logging
    config = {"name": trained.name, "temperature": trained.temperature, "threshold": threshold,
              "runtime": runtime}
    artifacts = {"model": str(trained.path), "support": str(support_set)}
    extra = []
    with tempfile.TemporaryDirectory() as folder:
        if runtime == "onnx":
            from fewshot.inference import exported

            inputs = (exported.inputs_of_folder(trained.modality, trained.settings, calibration)
                      if quantize == "static" and calibration else None)
            artifacts = {"exported": str(Path(folder) / f"{trained.name}.onnx")}
            exported.export(trained, support, Path(artifacts["exported"]), quantize, inputs)
            extra = ["onnxruntime", "onnx"]
        tags = {"model": trained.name, "runtime": runtime} | {
            k: str(v) for k, v in trained.provenance.items()}
        with mlflow_run("serve", experiment, tags) as run:
            return run.log_model(str(LOGGED_MODEL), artifacts, requirements(extra), config)


def requirements(extra: list[str] = ()) -> list[str]:
    """The serving environment's key pins (stated, not inferred: inference would load the model)."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in
            ("mlflow", "torch", "torchvision", "timm", "transformers", "safetensors", "pandas",
             "pillow", "numpy", *extra)]


@one_line_errors
def main() -> None:
    cli = argparse.ArgumentParser(prog="python -m fewshot.inference.serving",
                                  description=__doc__.split("\n")[0])
    cli.add_argument("--model", required=True, help="trained model name or path to model.pt")
    cli.add_argument("--support-set", required=True, type=Path,
                     help="a support set saved by fewshot-predict --save-support")
    cli.add_argument("--threshold", type=float, default=0.0,
                     help="'unknown' below this calibrated probability (default 0)")
    cli.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                     help="answer in PyTorch (default) or log the exported ONNX model and answer in "
                          "ONNX Runtime")
    quantize_arguments(cli)
    args = cli.parse_args()
    if not 0.0 <= args.threshold <= 1.0:
        raise UserError(f"--threshold {args.threshold} must be a probability in [0, 1]")
    if args.quantize and args.runtime != "onnx":
        raise UserError(f"--quantize {args.quantize} quantises an ONNX model: add --runtime onnx")
    if args.quantize == "static" and not args.calibration:
        raise UserError("--quantize static needs --calibration DIR (inputs to calibrate on)")
    print(log_model(args.model, args.support_set, args.threshold, runtime=args.runtime,
                    quantize=args.quantize, calibration=args.calibration))


if __name__ == "__main__":
    main()
