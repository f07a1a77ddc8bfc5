"""Few-shot methods, all with one protocol (see `base.FewShotMethod`), chosen by name."""

import sys

from fewshot.errors import UserError
from fewshot.registry import Registry

METHODS = Registry("method")


def method_from_argv(stage: str) -> str:
    """The method a `train@<method>`/`evaluate@<method>` stage runs, checked against the registry."""
    if len(sys.argv) != 2:
        names = ", ".join(METHODS.names())
        raise UserError(f"usage: python -m fewshot.stages.{stage} METHOD (one of {names})")
    METHODS.get(sys.argv[1])  # fails listing the valid names
    return sys.argv[1]


from fewshot.methods import protonet  # noqa: E402,F401  (registers the methods)
