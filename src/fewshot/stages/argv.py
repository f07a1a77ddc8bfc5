"""The command line of the per-model stages (`train@<name>`, `evaluate@<name>`)."""

from __future__ import annotations

import sys

from fewshot.core.errors import UserError


def model_from_argv(stage: str, models: dict, argv: list[str] | None = None) -> str:
    """The `models` entry a `train@<name>`/`evaluate@<name>` stage runs, checked against params.

    >>> model_from_argv("train", {"protonet": None}, ["train", "protonet"])
    'protonet'
    >>> model_from_argv("train", {"protonet": None}, ["train", "proto"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fewshot.core.errors.UserError: unknown model 'proto'; params 'models' has: protonet
    """
    argv = sys.argv if argv is None else argv
    names = ", ".join(models)
    if len(argv) != 2:
        raise UserError(f"usage: python -m fewshot.stages.{stage} MODEL (a key of params 'models': {names})")
    if argv[1] not in models:
        raise UserError(f"unknown model '{argv[1]}'; params 'models' has: {names}")
    return argv[1]
