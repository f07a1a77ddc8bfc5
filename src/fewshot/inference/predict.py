"""fewshot-predict: what is this image? Classes from a folder of examples or from names alone.

Examples:
  fewshot-predict --model protonet --support my_support/ query1.png queries/
  fewshot-predict --model protonet --support my_support/ --save-support my.support.safetensors
  fewshot-predict --model protonet --support-set my.support.safetensors --add more_classes/ \\
      --remove dog --save-support my.support.safetensors queries/ --json answers.json
  fewshot-predict --model zero_shot --classes names.csv queries/
  fewshot-predict --model protonet --support-set my.support.safetensors --runtime onnx queries/
  fewshot-predict --model protonet.onnx queries/          (written by fewshot-export)

--model is a trained model's name (data/models/<name>/, after `dvc repro`), a path to its
model.pt, or the MLflow URI of a model logged by `python -m fewshot.inference.serving` (runs:/<id>/model;
its support set is used unless --support/--support-set/--classes is given).
--support DIR has one sub-folder per class (optional classes.csv: class_name,description);
--classes FILE gives class names (and descriptions) for zero-shot models, or descriptions for the
support folder's classes. Probabilities are calibrated with the temperature evaluate@<model>
fitted on validation episodes; a query whose top probability is under --threshold is `unknown`.
A query that cannot be read gets an error line; the others are still answered (exit status 1 if
any query failed, 2 for bad arguments).
--runtime onnx answers in ONNX Runtime (backbone, head and support set exported once into a cache;
the same labels, probabilities within 1e-4; --quantize int8 trades a measured accuracy change for
speed: docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from fewshot.core.errors import UserError
from fewshot.core.fileio import atomic_path
from fewshot.inference import trained as inference
from fewshot.inference.support import SupportSet, from_classes, from_folder
from fewshot.inference.trained import Trained

UNKNOWN = "unknown"


class Processed:
    """A trained model with a support set processed once, answering in PyTorch (the reference an
    exported model is checked against)."""

    def __init__(self, trained: Trained, support: SupportSet):
        self.trained, self.classes, self.temperature = trained, support.classes, trained.temperature
        self.modality = trained.modality
        self.provenance = trained.provenance | {"runtime": "torch"}
        blank = trained.modality.blank(trained.settings)
        probe, reason = None, None
        try:
            with torch.no_grad():
                trained.method.process_support_set(support.inputs, support.labels, support.class_text)
                probe = trained.method(trained.inputs(blank))
        except (RuntimeError, ValueError, IndexError) as err:
            reason = err
        if probe is None or not torch.isfinite(probe).all():
            why = ("it needs examples of every class: give --support DIR"
                   if len(support.inputs) == 0 else
                   f"the support set does not fit it ({reason if probe is None else 'non-finite scores'})")
            raise UserError(f"model '{trained.name}' ({trained.spec['method']}) cannot use this "
                            f"support set: {why}")

    def read(self, files: list[Path]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        return self.trained.read(files)

    @torch.no_grad()
    def logits(self, raw: np.ndarray, batch_size: int = 64) -> torch.Tensor:
        return self.trained.method(self.trained.inputs(raw, batch_size))


class Predictor:
    """A model whose classes are fixed (`Processed`: PyTorch; `exported.Exported`: ONNX Runtime)
    answering any number of queries."""

    def __init__(self, model, threshold: float = 0.0, batch_size: int = 64):
        self.model, self.threshold, self.batch_size = model, threshold, batch_size

    def __call__(self, files: list[Path]) -> list[dict]:
        """One answer per file, in order: the class (or `unknown`), its probability and every
        class's; or the error that kept the file from being read."""
        answers: list[dict] = [{"query": str(f)} for f in files]
        classes = self.model.classes
        for start in range(0, len(files), self.batch_size):
            chunk = files[start : start + self.batch_size]
            raw, ok, errors = self.model.read(chunk)
            for index, message in errors.items():
                answers[start + index]["error"] = message
            if not ok:
                continue
            logits = self.model.logits(raw, self.batch_size)
            probs = inference.probabilities(logits, self.model.temperature)
            for row, index in zip(probs.tolist(), ok, strict=True):
                best = max(range(len(row)), key=row.__getitem__)
                answers[start + index] |= {
                    "label": classes[best] if row[best] >= self.threshold else UNKNOWN,
                    "top_class": classes[best], "probability": row[best],
                    "probabilities": dict(zip(classes, row, strict=True))}
        return answers


def answering(trained: Trained, support: SupportSet, runtime: str = "torch",
              quantize: str | None = None, calibration=None):
    """`trained` with `support` processed, answering in PyTorch or, exported (cached), in ONNX
    Runtime (`quantize`d: static int8 calibrated on the `calibration` inputs)."""
    if runtime == "torch":
        return Processed(trained, support)
    from fewshot.inference import exported

    return exported.load(exported.cached(trained, support, quantize, calibration), trained.temperature)


def predict(trained: Trained, support: SupportSet, files: list[Path], threshold: float = 0.0,
            batch_size: int = 64, runtime: str = "torch") -> list[dict]:
    """Answer `files` with a fresh `Predictor` (see there)."""
    return Predictor(answering(trained, support, runtime), threshold, batch_size)(files)


def load_support(trained: Trained, args: argparse.Namespace,
                 logged: SupportSet | None = None) -> SupportSet:
    if logged is not None and not (args.support or args.support_set or args.classes):
        support = logged
    elif args.support_set:
        support = SupportSet.load(args.support_set, trained)
        if args.add:
            support = support.merge(from_folder(trained, args.add, args.classes,
                                                batch_size=args.batch_size))
    elif args.support:
        support = from_folder(trained, args.support, args.classes, batch_size=args.batch_size)
    elif args.classes:
        support = from_classes(trained, args.classes)
    else:
        raise UserError("no classes: give --support DIR (examples per class), --support-set FILE "
                        "(a saved one) or --classes FILE (names, for zero-shot models)")
    if args.remove:
        support = support.remove(args.remove)
    return support


def _format(answer: dict) -> str:
    """One tab-separated line per query; tabs, newlines and backslashes in names are escaped."""
    query = _field(answer["query"])
    if "error" in answer:
        return f"{query}\terror: {_field(answer['error'])}"
    others = sorted(answer["probabilities"].items(), key=lambda kv: -kv[1])[:3]
    shown = ", ".join(f"{_field(name)} {p:.3f}" for name, p in others)
    return f"{query}\t{_field(answer['label'])}\t{answer['probability']:.3f}\t({shown})"


def _field(text: str) -> str:
    r"""`text` safe inside one TSV field.

    >>> print(_field("a\tb\nc\\d"))
    a\tb\nc\\d
    """
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def parser() -> argparse.ArgumentParser:
    doc = __doc__.split("\n", 1)
    cli = argparse.ArgumentParser(prog="fewshot-predict", description=doc[0],
                                  epilog=doc[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("queries", nargs="*", type=Path, help="input files or folders of them")
    model_arguments(cli, exported_too=True)
    cli.add_argument("--save-support", type=Path, help="save the support set (reload: --support-set)")
    cli.add_argument("--threshold", type=float, default=0.0,
                     help="answer 'unknown' when the top calibrated probability is below this "
                          "(default 0: always a class)")
    cli.add_argument("--runtime", choices=("torch", "onnx"),
                     help="answer in PyTorch (default) or in ONNX Runtime: the model and its support "
                          "set exported once, cached under $FEWSHOT_CACHE_DIR (default "
                          "~/.cache/fewshot/onnx); an exported .onnx model always runs in ONNX Runtime")
    quantize_arguments(cli)
    cli.add_argument("--json", type=Path, help="also write the answers as JSON here")
    return cli


def model_arguments(cli: argparse.ArgumentParser, exported_too: bool = False) -> None:
    """The model, its classes and its calibration: the arguments fewshot-predict and fewshot-export
    share."""
    cli.add_argument("--model", required=True,
                     help="trained model name, path to model.pt, MLflow URI (runs:/ID/model)"
                          + (" or a model written by fewshot-export (.onnx)" if exported_too else ""))
    source = cli.add_mutually_exclusive_group()
    source.add_argument("--support", type=Path, help="folder with one sub-folder of inputs per class")
    source.add_argument("--support-set", type=Path, help="a support set saved with --save-support")
    cli.add_argument("--classes", type=Path,
                     help="class names (+ descriptions): a CSV with class_name[,description] or one "
                          "name per line")
    cli.add_argument("--add", type=Path, help="with --support-set: add the classes of this folder")
    cli.add_argument("--remove", action="append", metavar="CLASS",
                     help="leave this class out (repeat for several)")
    cli.add_argument("--temperature", type=float,
                     help="override the calibrated temperature (default: evaluate@<model>'s)")
    cli.add_argument("--batch-size", type=int, default=64)


def quantize_arguments(cli: argparse.ArgumentParser) -> None:
    cli.add_argument("--quantize", choices=("static",),
                     help="int8 ONNX model: static (weights and activations, "
                          "calibrated on --calibration DIR or the --support folder's files)")
    cli.add_argument("--calibration", type=Path,
                     help="folder of inputs (any depth) calibrating --quantize static")


def check_arguments(args: argparse.Namespace) -> None:
    """The checks of the shared arguments, before anything is loaded."""
    if args.temperature is not None and not (math.isfinite(args.temperature) and args.temperature > 0):
        raise UserError(f"--temperature {args.temperature} must be a finite number > 0 (it divides "
                        "the logits; default: the one evaluate@<model> fitted)")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size} must be at least 1")
    if args.add and not args.support_set:
        raise UserError("--add needs --support-set (the saved set to add classes to)")
    if args.calibration and args.quantize != "static":
        raise UserError("--calibration is for --quantize static (it calibrates the activations)")
    if args.quantize == "static" and not (args.calibration or args.support):
        raise UserError("--quantize static needs inputs to calibrate on: give --calibration DIR "
                        "(or --support DIR, whose files are used)")


def load_model(args: argparse.Namespace) -> tuple[Trained, SupportSet]:
    """The trained model of --model and the support set the arguments give."""
    logged = None
    if args.model.startswith(("runs:/", "models:/")):  # a model logged by fewshot.inference.serving
        from fewshot.core.tracking import load_logged_model

        served = load_logged_model(args.model)
        if getattr(served, "exported", None) is not None:
            raise UserError(f"'{args.model}' was logged exported (ONNX): serve it, or give "
                            "fewshot-predict the trained model and --runtime onnx")
        trained, logged = served.trained, served.support
        if args.temperature is not None:
            trained.temperature = args.temperature
    else:
        trained = inference.load(args.model, temperature=args.temperature)
    support = load_support(trained, args, logged)
    for warning in support.warnings:
        print(f"warning: skipped support input: {warning}", file=sys.stderr)
    return trained, support


def calibration_inputs(trained: Trained, args: argparse.Namespace):
    """The raw inputs calibrating static quantisation: --calibration DIR, else the support folder."""
    if args.quantize != "static":
        return None
    from fewshot.inference.exported import inputs_of_folder

    return inputs_of_folder(trained.modality, trained.settings, args.calibration or args.support)


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.threshold <= 1.0:
        raise UserError(f"--threshold {args.threshold} must be a probability in [0, 1]")
    check_arguments(args)
    if args.quantize and args.runtime != "onnx":
        raise UserError(f"--quantize {args.quantize} quantises an ONNX model: add --runtime onnx")
    if args.model.endswith(".onnx"):
        model = _exported_model(args)
    else:
        trained, support = load_model(args)
        if args.save_support:
            support.save(args.save_support)
            print(f"saved support set: {len(support.classes)} classes, {len(support.labels)} inputs "
                  f"-> {args.save_support}", file=sys.stderr)
        model = answering(trained, support, args.runtime or "torch", args.quantize,
                          calibration_inputs(trained, args))
    files = [f for target in args.queries for f in inference.query_files(target)]
    answers = Predictor(model, args.threshold, args.batch_size)(files)
    for answer in answers:
        print(_format(answer))
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps({"model": model.provenance, "temperature": model.temperature,
                                       "threshold": args.threshold, "classes": model.classes,
                                       "answers": answers}, indent=1, allow_nan=False) + "\n")
    return 1 if any("error" in a for a in answers) else 0


def _exported_model(args: argparse.Namespace):
    """A model written by fewshot-export: its classes and runtime are in the file."""
    from fewshot.inference import exported

    given = [f"--{name.replace('_', '-')}" for name in ("support", "support_set", "classes", "add",
                                                         "remove", "save_support", "quantize")
             if getattr(args, name)]
    if given:
        raise UserError(f"{', '.join(given)}: an exported model's classes (and quantisation) are "
                        f"fixed in '{args.model}'; export it again to change them")
    if args.runtime == "torch":
        raise UserError(f"'{args.model}' is an exported (ONNX) model: it runs in ONNX Runtime "
                        "(leave out --runtime, or give the trained model for --runtime torch)")
    return exported.load(Path(args.model), args.temperature)


def main() -> None:
    args = parser().parse_args()
    try:
        status = run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.exit(status)


if __name__ == "__main__":
    main()
