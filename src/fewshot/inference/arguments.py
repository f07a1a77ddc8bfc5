"""The command-line arguments fewshot-predict, fewshot-export and serving share: which model, its
classes (a support folder, a saved support set, class names), its calibration and quantisation;
their checks, and loading what they name."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from fewshot.core.errors import UserError
from fewshot.inference import trained as inference
from fewshot.inference.support import SupportSet, from_classes, from_folder
from fewshot.inference.trained import Trained


def model_arguments(cli: argparse.ArgumentParser, exported_too: bool = False) -> None:
    """The model, its classes and its calibration: the arguments fewshot-predict and fewshot-export
    share."""
    cli.add_argument("--model", required=True,
                     help="trained model name, path to model.pt, MLflow URI (runs:/ID/model, or "
                          "models:/NAME@ALIAS of one `python -m fewshot.gate promote` registered)"
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
    if args.model.startswith(("runs:/", "models:/")):  # logged by train@ or by serving
        from fewshot.core.model_registry import version_tags
        from fewshot.core.tracking import load_logged_model

        served = load_logged_model(args.model)
        if getattr(served, "exported", None) is not None:
            raise UserError(f"'{args.model}' was logged exported (ONNX): serve it, or give "
                            "fewshot-predict the trained model and --runtime onnx")
        trained, logged = served.trained, served.support
        if args.temperature is not None:
            trained.temperature = args.temperature
        elif "temperature" in (registered := version_tags(args.model)):
            trained.temperature = float(registered["temperature"])  # fitted by evaluate@, promoted
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
