"""Rules that span sections of params.yaml, checked by `params.load` (so by every stage and by
the `check` stage): the data source and its modality's settings; each model's method, backbone
and options; that a model's backbone takes the data's modality; that every frozen backbone a
model uses is cached by `embed`. The registries are imported here, lazily, so that reading params
stays cheap for whoever does not validate.
"""

from __future__ import annotations

from fewshot.core.errors import UserError


def check(params) -> None:
    """Raise `UserError` on the first cross-section problem of already-typed params."""
    from fewshot.core.params import from_dict
    from fewshot.data.sources import SOURCES
    from fewshot.modalities import modality_of
    from fewshot.models.backbones import BACKBONES
    from fewshot.models.methods import METHODS

    modality = modality_of(SOURCES.get(params.data.source).modality)
    unknown = sorted(set(params.modality) - set(_modality_names()))
    if unknown:
        raise UserError(f"params 'modality' has unknown kind(s) {unknown}; valid: "
                        f"{', '.join(_modality_names())}")
    if modality.name not in params.modality:
        raise UserError(f"params 'modality' lacks '{modality.name}', the kind of data source "
                        f"'{params.data.source}' gives; add its settings (docs/data.md)")
    for kind, settings in params.modality.items():
        modality_of(kind).settings(settings)
    for name in params.embed.backbones:
        backbone = BACKBONES.get(name)
        _raise_if_other_modality(f"embed.backbones lists '{name}'", name, modality.name)
        if not getattr(backbone, "pretrained", True):
            raise UserError(f"embed.backbones lists '{name}', which is trained from scratch and "
                            "cannot be cached; list only pretrained backbones")
    for name, entry in params.models.items():
        cls = METHODS.get(entry.method)
        options = from_dict(entry.options, cls.Options, prefix=f"models.{name}.options.")
        pretrained = BACKBONES.get(entry.backbone).pretrained
        _raise_if_other_modality(f"models.{name}", entry.backbone, modality.name)
        try:
            cls.check_entry(options, entry.head_dim, pretrained)
        except UserError as err:
            raise UserError(f"models.{name}: {err}") from None
        if entry.freeze and pretrained and entry.backbone not in params.embed.backbones:
            raise UserError(f"models.{name} uses frozen backbone '{entry.backbone}', which "
                            f"embed.backbones ({', '.join(params.embed.backbones)}) does not cache; "
                            "add it there")


def _raise_if_other_modality(where: str, backbone: str, modality: str) -> None:
    from fewshot.models.backbones import BACKBONES

    takes = BACKBONES.get(backbone).modality
    if takes != modality:
        raise UserError(f"{where}: backbone '{backbone}' encodes {takes} data but the data source "
                        f"gives {modality} data; choose one of {', '.join(_backbones_for(modality))}")


def _modality_names() -> list[str]:
    from fewshot.modalities import MODALITIES

    return MODALITIES.names()


def _backbones_for(modality: str) -> list[str]:
    from fewshot.models.backbones import BACKBONES

    return [n for n in BACKBONES.names() if BACKBONES.get(n).modality == modality]
