"""The command line of the per-domain stages (`ingest@<domain>`, ..., `embed@<domain>`) and the
per-model stages (`train@<name>`, `evaluate@<name>`)."""

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
    return _key_from_argv(stage, "MODEL", "model", "models", models, argv)


def domain_from_argv(stage: str, domains: dict, argv: list[str] | None = None) -> str:
    """The `domains` entry an `ingest@<domain>` (curate, episodes, embed) stage runs.

    >>> domain_from_argv("ingest", {"images": None}, ["ingest", "imgs"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fewshot.core.errors.UserError: unknown domain 'imgs'; params 'domains' has: images
    """
    return _key_from_argv(stage, "DOMAIN", "domain", "domains", domains, argv)


def _key_from_argv(stage: str, usage: str, what: str, section: str, keys: dict,
                   argv: list[str] | None) -> str:
    argv = sys.argv if argv is None else argv
    names = ", ".join(keys)
    if len(argv) != 2:
        raise UserError(f"usage: python -m fewshot.stages.{stage} {usage} (a key of params "
                        f"'{section}': {names})")
    if argv[1] not in keys:
        raise UserError(f"unknown {what} '{argv[1]}'; params '{section}' has: {names}")
    return argv[1]
