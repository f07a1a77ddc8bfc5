"""Typed, frozen dataclasses from nested dicts (params files, method options, modality settings).

An unknown or misspelled key is a `UserError` naming the key and the valid ones; a missing key names
the key; a value of the wrong type names the expected type; a dataclass's own rule (its
`__post_init__`) is reported with the section it belongs to.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing

from fewshot.core.errors import UserError

# Names that become DVC stage names and words of a shell command (`train@<name>`): nothing a shell
# or DVC would read specially.
NAME = re.compile(r"[A-Za-z0-9_-]+")


def build(raw: dict, cls: type, prefix: str = "") -> typing.Any:
    """Build `cls` from a nested dict, rejecting unknown keys and wrong types.

    >>> @dataclasses.dataclass(frozen=True)
    ... class Span:
    ...     lo: int
    ...     hi: float
    >>> build({"lo": 1, "hi": 2}, Span)
    Span(lo=1, hi=2.0)
    >>> build({"lo": 1}, Span, "span.")
    Traceback (most recent call last):
    fewshot.core.errors.UserError: params section 'span' lacks required key(s) hi
    >>> build({"lo": 1, "high": 2}, Span, "span.")
    Traceback (most recent call last):
    fewshot.core.errors.UserError: unknown params key 'span.high'; valid keys: lo, hi
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
            values[key] = build(value, hint, f"{prefix}{key}.")
        elif typing.get_origin(hint) is dict and dataclasses.is_dataclass(typing.get_args(hint)[1]):
            entry = typing.get_args(hint)[1]
            entries = _checked(value, dict, f"{prefix}{key}")
            for name in entries:
                _raise_if_unsafe_name(name, f"{prefix}{key}")
            values[key] = {name: build(inner, entry, f"{prefix}{key}.{name}.")
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
    fewshot.core.errors.UserError: params 'models' key 'x;touch /tmp/INJECTED' is not a valid name; ...
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




def flatten(value: typing.Any, prefix: str) -> dict:
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict = {}
    for key, inner in value.items():
        flat |= flatten(inner, f"{prefix}.{key}")
    return flat
