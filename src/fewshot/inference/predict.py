"""fewshot-predict: what is this image? Classes from a folder of examples or from names alone.

Examples:
  fewshot-predict --model protonet --support my_support/ query1.png queries/
  fewshot-predict --model protonet --support my_support/ --save-support my.support.safetensors
  fewshot-predict --model protonet --support-set my.support.safetensors --add more_classes/ \\
      --remove dog --save-support my.support.safetensors queries/ --json answers.json
  fewshot-predict --model zero_shot --classes names.csv queries/

--model is a trained model's name (data/models/<name>/, after `dvc repro`), a path to its
model.pt, or the MLflow URI of a model logged by `python -m fewshot.inference.serving` (runs:/<id>/model;
its support set is used unless --support/--support-set/--classes is given).
--support DIR has one sub-folder per class (optional classes.csv: class_name,description);
--classes FILE gives class names (and descriptions) for zero-shot models, or descriptions for the
support folder's classes. Probabilities are calibrated with the temperature evaluate@<model>
fitted on validation episodes; a query whose top probability is under --threshold is `unknown`.
A query that cannot be read gets an error line; the others are still answered (exit status 1 if
any query failed, 2 for bad arguments).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from fewshot.core.errors import UserError
from fewshot.core.fileio import atomic_path
from fewshot.inference import trained as inference
from fewshot.inference.support import SupportSet, from_classes, from_folder
from fewshot.inference.trained import Trained

UNKNOWN = "unknown"


class Predictor:
    """A trained method with its support set processed once; answers any number of queries."""

    def __init__(self, trained: Trained, support: SupportSet, threshold: float = 0.0,
                 batch_size: int = 64):
        self.trained, self.support = trained, support
        self.threshold, self.batch_size = threshold, batch_size
        self._process_support_set()

    def _process_support_set(self) -> None:
        """Give the method the support set; refuse one it cannot use (no examples for a method that
        needs them, or inputs of the wrong shape): it must score a blank input finitely."""
        trained, support = self.trained, self.support
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

    def __call__(self, files: list[Path]) -> list[dict]:
        """One answer per file, in order: the class (or `unknown`), its probability and every
        class's; or the error that kept the file from being read."""
        answers: list[dict] = [{"query": str(f)} for f in files]
        for start in range(0, len(files), self.batch_size):
            chunk = files[start : start + self.batch_size]
            raw, ok, errors = self.trained.read(chunk)
            for index, message in errors.items():
                answers[start + index]["error"] = message
            if not ok:
                continue
            with torch.no_grad():
                logits = self.trained.method(self.trained.inputs(raw, self.batch_size))
            probs = inference.probabilities(logits, self.trained.temperature)
            for row, index in zip(probs.tolist(), ok, strict=True):
                best = max(range(len(row)), key=row.__getitem__)
                answers[start + index] |= {
                    "label": self.support.classes[best] if row[best] >= self.threshold else UNKNOWN,
                    "top_class": self.support.classes[best], "probability": row[best],
                    "probabilities": dict(zip(self.support.classes, row, strict=True))}
        return answers


def predict(trained: Trained, support: SupportSet, files: list[Path], threshold: float = 0.0,
            batch_size: int = 64) -> list[dict]:
    """Answer `files` with a fresh `Predictor` (see there)."""
    return Predictor(trained, support, threshold, batch_size)(files)


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
    cli.add_argument("queries", nargs="*", type=Path, help="image files or folders of images")
    cli.add_argument("--model", required=True,
                     help="trained model name, path to model.pt, or MLflow URI (runs:/ID/model)")
    source = cli.add_mutually_exclusive_group()
    source.add_argument("--support", type=Path, help="folder with one sub-folder of images per class")
    source.add_argument("--support-set", type=Path, help="a support set saved with --save-support")
    cli.add_argument("--classes", type=Path,
                     help="class names (+ descriptions): a CSV with class_name[,description] or one "
                          "name per line")
    cli.add_argument("--add", type=Path, help="with --support-set: add the classes of this folder")
    cli.add_argument("--remove", action="append", metavar="CLASS",
                     help="leave this class out (repeat for several)")
    cli.add_argument("--save-support", type=Path, help="save the support set (reload: --support-set)")
    cli.add_argument("--threshold", type=float, default=0.0,
                     help="answer 'unknown' when the top calibrated probability is below this "
                          "(default 0: always a class)")
    cli.add_argument("--temperature", type=float,
                     help="override the calibrated temperature (default: evaluate@<model>'s)")
    cli.add_argument("--batch-size", type=int, default=64)
    cli.add_argument("--json", type=Path, help="also write the answers as JSON here")
    return cli


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.threshold <= 1.0:
        raise UserError(f"--threshold {args.threshold} must be a probability in [0, 1]")
    if args.temperature is not None and not (math.isfinite(args.temperature) and args.temperature > 0):
        raise UserError(f"--temperature {args.temperature} must be a finite number > 0 (it divides "
                        "the logits; default: the one evaluate@<model> fitted)")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size} must be at least 1")
    if args.add and not args.support_set:
        raise UserError("--add needs --support-set (the saved set to add classes to)")
    logged = None
    if args.model.startswith(("runs:/", "models:/")):  # a model logged by fewshot.inference.serving
        from fewshot.core.tracking import load_logged_model

        served = load_logged_model(args.model)
        trained, logged = served.trained, served.support
        if args.temperature is not None:
            trained.temperature = args.temperature
    else:
        trained = inference.load(args.model, temperature=args.temperature)
    support = load_support(trained, args, logged)
    for warning in support.warnings:
        print(f"warning: skipped support image: {warning}", file=sys.stderr)
    if args.save_support:
        support.save(args.save_support)
        print(f"saved support set: {len(support.classes)} classes, {len(support.labels)} images "
              f"-> {args.save_support}", file=sys.stderr)
    files = [f for target in args.queries for f in inference.query_files(target)]
    answers = predict(trained, support, files, args.threshold, args.batch_size)
    for answer in answers:
        print(_format(answer))
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps({"model": trained.provenance, "temperature": trained.temperature,
                                       "threshold": args.threshold, "classes": support.classes,
                                       "answers": answers}, indent=1, allow_nan=False) + "\n")
    return 1 if any("error" in a for a in answers) else 0


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
