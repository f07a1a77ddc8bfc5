"""Few-shot methods, all with one protocol (see `base.FewShotMethod`), chosen by name."""

from fewshot.registry import Registry

METHODS = Registry("method")

from fewshot.methods import protonet  # noqa: E402,F401  (registers the methods)
