"""fewshot-export: a trained model with its support set as one ONNX file (see
`fewshot.inference.exported`); `fewshot-export --help` for the arguments."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fewshot.core.errors import UserError
from fewshot.inference import exported
from fewshot.inference.arguments import (
    calibration_inputs,
    check_arguments,
    load_model,
    model_arguments,
    quantize_arguments,
)


def parser() -> argparse.ArgumentParser:
    doc = exported.__doc__.split("\n", 1)
    cli = argparse.ArgumentParser(
        prog="fewshot-export", description=doc[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Examples:\n  fewshot-export --model protonet --support my_support/ --out protonet.onnx\n"
               "  fewshot-export --model protonet --support-set my.support.safetensors "
               "--quantize static --calibration images/ --out protonet-int8.onnx\n"
               "  fewshot-predict --model protonet.onnx queries/\n\n" + doc[1])
    model_arguments(cli)
    quantize_arguments(cli)
    cli.add_argument("--out", type=Path, required=True, help="the ONNX file to write (.onnx)")
    return cli


def run(args: argparse.Namespace) -> None:
    check_arguments(args)
    if args.out.suffix != ".onnx":
        raise UserError(f"--out '{args.out}' must end in .onnx")
    trained, support = load_model(args)
    meta = exported.export(trained, support, args.out, args.quantize, calibration_inputs(trained, args))
    print(f"exported {trained.name} ({trained.spec['method']}, {trained.spec['backbone']}) with "
          f"{len(meta['classes'])} classes, quantize {meta['quantize']}: {args.out} "
          f"({args.out.stat().st_size / 2**20:.1f} MiB)", file=sys.stderr)


def main() -> None:
    args = parser().parse_args()
    try:
        run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
