"""Few-shot methods, all with one protocol (see `base.FewShotMethod`), chosen by name."""

import sys

from fewshot.errors import UserError
from fewshot.registry import Registry

METHODS = Registry("method")


def model_from_argv(stage: str, models: dict) -> str:
    """The `models` entry a `train@<name>`/`evaluate@<name>` stage runs, checked against params."""
    names = ", ".join(models)
    if len(sys.argv) != 2:
        raise UserError(f"usage: python -m fewshot.stages.{stage} MODEL (a key of params 'models': {names})")
    if sys.argv[1] not in models:
        raise UserError(f"unknown model '{sys.argv[1]}'; params 'models' has: {names}")
    return sys.argv[1]


from fewshot.methods import conse, protonet, siamese, zero_shot  # noqa: E402,F401  (registers them)
