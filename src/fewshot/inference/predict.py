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
the same labels, probabilities within 1e-4; --quantize static makes it int8: 3x smaller, not faster
on a small CPU, a measured accuracy change: docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from fewshot.core.errors import UserError
from fewshot.core.fileio import atomic_path
from fewshot.inference import trained as inference
from fewshot.inference.arguments import (
    calibration_inputs,
    check_arguments,
    load_model,
    model_arguments,
    quantize_arguments,
)
from fewshot.inference.support import SupportSet
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
