"""Few-shot methods, all with one protocol (see `base.FewShotMethod`), chosen by name."""

from fewshot.core.registry import Registry

METHODS = Registry("method")


from fewshot.models.methods import conse, protonet, siamese, zero_shot  # noqa: E402,F401  (registers them)
