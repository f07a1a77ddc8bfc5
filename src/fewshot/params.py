"""`params.yaml` parsed once into typed, frozen objects.

An unknown or misspelled key is a `UserError` naming the key and the valid ones, so a typo in
`dvc exp run -S trian.lr=0.1` fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fewshot.errors import UserError

# Names that become DVC stage names and words of a shell command (`train@<name>`): nothing a shell
# or DVC would read specially.
NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Data:
    source: str = "emoji"
    image_folder: str | None = None


@dataclass(frozen=True)
class Curate:
    image_size: int = 128
    min_designs: int = 6
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0


@dataclass(frozen=True)
class Episodes:
    val_episodes: int = 300
    test_episodes: int = 1000


@dataclass(frozen=True)
class Embed:
    backbones: list[str] = field(default_factory=lambda: ["efficientnet_lite0"])
    batch_size: int = 64
    text_templates: list[str] = field(default_factory=lambda: ["an emoji of {name}"])


@dataclass(frozen=True)
class Model:
    """One row of the comparison: a method on a backbone, trained (or not) with these settings."""

    method: str
    backbone: str = "efficientnet_lite0"
    freeze: bool = True            # pretrained backbones only; false fine-tunes it from pixels
    head_dim: int = 256            # trainable projection after the backbone; 0 = none
    episodes: int = 1500           # training episodes; 0 = no training
    train_n_way: int = 20
    lr: float = 1e-3
    options: dict = field(default_factory=dict)  # the method's own, checked by the method


@dataclass(frozen=True)
class Train:
    weight_decay: float = 1e-4
    val_every: int = 100
    val_episodes: int = 100


@dataclass(frozen=True)
class Evaluate:
    ece_bins: int = 15
    latency_episodes: int = 30
    latency_warmup: int = 5


@dataclass(frozen=True)
class Tracking:
    experiment: str = "fewshot"


@dataclass(frozen=True)
class Gate:
    """Tolerances of the regression gate (`python -m fewshot.gate`)."""

    accuracy_drop: float = 0.01     # fail when the paired drop exceeds this and its CI excludes 0
    confidence: float = 0.95        # of the paired accuracy CI
    ece_increase: float = 0.02      # fail when calibrated ECE rises by more than this
    latency_ratio: float = 2.0      # fail when query p50 exceeds baseline x this (same device only)
    latency_min_ms: float = 5.0     # ... and by more than this many ms


@dataclass(frozen=True)
class Params:
    seed: int = 0
    n_way: int = 5
    n_shot: int = 1
    n_query: int = 1
    models: dict[str, Model] = field(default_factory=lambda: {"protonet": Model("protonet")})
    data: Data = field(default_factory=Data)
    curate: Curate = field(default_factory=Curate)
    episodes: Episodes = field(default_factory=Episodes)
    embed: Embed = field(default_factory=Embed)
    train: Train = field(default_factory=Train)
    evaluate: Evaluate = field(default_factory=Evaluate)
    tracking: Tracking = field(default_factory=Tracking)
    gate: Gate = field(default_factory=Gate)


def load(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file.

    Raises:
        UserError: the file is missing, a key is unknown, or a value has the wrong type.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"params file '{path}' not found; run from the repository root")
    raw = yaml.safe_load(path.read_text()) or {}
    return from_dict(raw)


def from_dict(raw: dict, cls: type = Params, prefix: str = "") -> typing.Any:
    """Build `cls` from a nested dict, rejecting unknown keys and wrong types.

    >>> from_dict({"n_shot": 5}).n_shot
    5
    >>> from_dict({"trian": {}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fewshot.errors.UserError: unknown params key 'trian'; valid keys: seed, n_way, ..., train, ...
    """
    if not isinstance(raw, dict):
        raise UserError(f"params section '{prefix.rstrip('.')}' must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            raise UserError(f"unknown params key '{prefix}{key}'; valid keys: {', '.join(names)}")
    values = {}
    for key, value in raw.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            values[key] = from_dict(value, hint, f"{prefix}{key}.")
        elif typing.get_origin(hint) is dict and dataclasses.is_dataclass(typing.get_args(hint)[1]):
            entry = typing.get_args(hint)[1]
            entries = _checked(value, dict, f"{prefix}{key}")
            for name in entries:
                _raise_if_unsafe_name(name, f"{prefix}{key}")
            values[key] = {name: from_dict(inner, entry, f"{prefix}{key}.{name}.")
                           for name, inner in entries.items()}
        else:
            values[key] = _checked(value, hint, f"{prefix}{key}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UserError(f"params section '{prefix.rstrip('.') or 'top level'}' lacks required key(s) "
                        f"{', '.join(missing)}")
    try:
        return cls(**values)
    except UserError as err:  # a section's own rule (e.g. a method's options)
        raise UserError(f"params '{prefix.rstrip('.')}': {err}") from None


def _raise_if_unsafe_name(name: typing.Any, section: str) -> None:
    """A key of `models` becomes a DVC stage name and part of a shell command: letters, digits,
    `_` and `-` only.

    >>> _raise_if_unsafe_name("x;touch /tmp/INJECTED", "models")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fewshot.errors.UserError: params 'models' key 'x;touch /tmp/INJECTED' is not a valid name; ...
    """
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UserError(f"params '{section}' key {name!r} is not a valid name; "
                        "expected letters, digits, '_' and '-' only")


def _checked(value: typing.Any, hint: typing.Any, key: str) -> typing.Any:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in allowed:
        origin = typing.get_origin(kind) or kind
        if kind is type(None) and value is None:
            return None
        if origin is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if origin is int and isinstance(value, bool):
            continue
        if isinstance(value, origin):
            return value
    expected = " or ".join(getattr(k, "__name__", str(k)) for k in allowed)
    raise UserError(f"params key '{key}' = {value!r} has the wrong type; expected {expected}")


def merged(base: dict, override: dict) -> dict:
    """`base` with `override`'s keys replaced, section by section (a preset holds only what it changes).

    >>> merged({"n_way": 5, "train": {"lr": 0.1, "episodes": 9}}, {"train": {"lr": 0.2}})
    {'n_way': 5, 'train': {'lr': 0.2, 'episodes': 9}}
    """
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def section(params: Params, *names: str) -> dict:
    """The named parts of `params` as a flat dict, for logging (`train.lr`, `models.x.lr`, ...)."""
    flat: dict = {}
    for name in names:
        value = params
        for part in name.split("."):
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        flat |= _flatten(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value, name)
    return flat


def _flatten(value: typing.Any, prefix: str) -> dict:
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict = {}
    for key, inner in value.items():
        flat |= _flatten(inner, f"{prefix}.{key}")
    return flat
