"""Rules that span sections of params.yaml, checked by `params.load`: each domain's source and its
modality's settings (every stage); each domain's cached backbones, each model's domain, method,
backbone and options, that a model's backbone takes its domain's modality, that every frozen
backbone a model uses is cached by its domain's `embed` (the `check` stage, upstream of every
train@, and every other stage but ingest, curate and episodes). The registries are imported here,
lazily: the model registries import torch (1.6 s), which those three data stages never need.
"""

from __future__ import annotations

from fewshot.core.errors import UserError


def check(params, models: bool = True) -> None:
    """Raise `UserError` on the first cross-section problem of already-typed params (`models`:
    also the rules that involve backbones and methods)."""
    kinds = {name: _check_domain(name, domain) for name, domain in params.domains.items()}
    if models:
        _check_models(params, kinds)


def _check_models(params, kinds: dict[str, str]) -> None:
    from fewshot.core.params import from_dict
    from fewshot.models.backbones import BACKBONES
    from fewshot.models.methods import METHODS

    for name, domain in params.domains.items():
        _check_cached_backbones(name, domain, kinds[name])
    if "domain" in params.model_defaults:
        raise UserError("model_defaults sets 'domain'; name the domain in every `models` entry "
                        "instead (dvc.yaml reads it from the entry)")
    for name, entry in params.models.items():
        if entry.domain not in kinds:
            raise UserError(f"models.{name} names domain '{entry.domain}', which params 'domains' "
                            f"does not have ({', '.join(kinds)}); remove the model or add the domain")
        domain = params.domains[entry.domain]
        cls = METHODS.get(entry.method)
        options = from_dict(entry.options, cls.Options, prefix=f"models.{name}.options.")
        pretrained = BACKBONES.get(entry.backbone).pretrained
        _raise_if_other_modality(f"models.{name}", entry.backbone, kinds[entry.domain])
        try:
            cls.check_entry(options, entry.head_dim, pretrained)
        except UserError as err:
            raise UserError(f"models.{name}: {err}") from None
        if entry.pretrain_steps and pretrained and entry.freeze:
            raise UserError(f"models.{name} sets pretrain_steps={entry.pretrain_steps} on frozen "
                            f"backbone '{entry.backbone}'; pretraining trains the backbone: use one "
                            "trained from scratch, set freeze: false, or remove pretrain_steps")
        if entry.freeze and pretrained and entry.backbone not in domain.embed.backbones:
            raise UserError(f"models.{name} uses frozen backbone '{entry.backbone}', which "
                            f"domains.{entry.domain}.embed.backbones "
                            f"({', '.join(domain.embed.backbones)}) does not cache; add it there")


def _check_domain(name: str, domain) -> str:
    """A domain's source and its modality's settings; -> the modality's name."""
    from fewshot.data.sources import SOURCES
    from fewshot.modalities import modality_of

    modality = SOURCES.get(domain.source).modality
    modality_of(modality).settings(domain.settings, prefix=f"domains.{name}.settings.")
    return modality


def _check_cached_backbones(name: str, domain, modality: str) -> None:
    from fewshot.models.backbones import BACKBONES

    for backbone in domain.embed.backbones:
        _raise_if_other_modality(f"domains.{name}.embed.backbones lists '{backbone}'", backbone, modality)
        if not BACKBONES.get(backbone).pretrained:
            raise UserError(f"domains.{name}.embed.backbones lists '{backbone}', which is trained "
                            "from scratch and cannot be cached; list only pretrained or fixed ones")


def _raise_if_other_modality(where: str, backbone: str, modality: str) -> None:
    from fewshot.models.backbones import BACKBONES

    takes = BACKBONES.get(backbone).modality
    if takes != modality:
        raise UserError(f"{where}: backbone '{backbone}' encodes {takes} data but its domain's "
                        f"source gives {modality} data; choose one of "
                        f"{', '.join(_backbones_for(modality))}")


def _backbones_for(modality: str) -> list[str]:
    from fewshot.models.backbones import BACKBONES

    return [n for n in BACKBONES.names() if BACKBONES.get(n).modality == modality]
