"""`params.yaml` parsed once into typed, frozen objects: the schema and its rules.

params.yaml holds every value (no defaults here). An unknown, misspelled or missing key is a
`UserError` naming it, so a typo in `dvc exp run -S trian.lr=0.1` fails loudly instead of being
ignored. Range rules live with their types (`__post_init__`); rules across sections (a model's
method, backbone and options; the data's modality) in `fewshot.core.consistency`. `load` applies
both, so every stage and the `check` stage run the same validation.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from fewshot.core import typed
from fewshot.core.errors import UserError


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


@dataclass(frozen=True)
class Curate:
    min_groups: int  # keep classes with items in at least this many groups
    val_fraction: float
    test_fraction: float
    test_classes: list[str]  # the test split's class ids; empty: test_fraction of the classes
    val_split: str   # classes (class-disjoint val) | groups (held-out groups of the training classes)
    split_seed: int
    max_classes: int  # a smaller benchmark of the same data: at most this many classes; 0 = all
    max_groups: int   # ... and at most this many groups (objects) per class; 0 = all

    def __post_init__(self):
        _require(self.max_classes >= 0 and self.max_groups >= 0,
                 f"max_classes={self.max_classes} and max_groups={self.max_groups} must be >= 0 "
                 "(0 = no limit)")
        _require(self.min_groups >= 2, f"min_groups={self.min_groups} must be >= 2 (support and "
                 "query come from different groups)")
        _require(self.val_split in ("classes", "groups"),
                 f"val_split '{self.val_split}' must be classes or groups")
        _require(self.val_fraction > 0 and self.test_fraction > 0
                 and self.val_fraction + self.test_fraction < 1,
                 f"val_fraction={self.val_fraction} and test_fraction={self.test_fraction} must be "
                 "> 0 and sum to < 1 (the rest is train)")


@dataclass(frozen=True)
class Episodes:
    val_episodes: int
    test_episodes: int

    def __post_init__(self):
        _require(min(self.val_episodes, self.test_episodes) >= 1,
                 f"val_episodes={self.val_episodes} and test_episodes={self.test_episodes} must be >= 1")


@dataclass(frozen=True)
class Embed:
    backbones: list[str]
    batch_size: int
    text_templates: list[str]
    runtime: str  # torch | onnx: ONNX Runtime computes the features (PyTorch if it cannot)

    def __post_init__(self):
        from fewshot.data.text import check_templates

        _require(self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1")
        _require(self.runtime in ("torch", "onnx"), f"runtime '{self.runtime}' must be torch or onnx")
        check_templates(self.text_templates)


@dataclass(frozen=True)
class Domain:
    """One benchmark of the pipeline: its data, how items of its kind are stored, its splits,
    episodes and cached features (`data/<domain>/`)."""

    source: str      # a name of fewshot.data.sources.SOURCES
    folder: str      # the folder of a folder source (one sub-folder per class); must exist (a DVC dep)
    settings: dict   # of the source's modality (checked by fewshot.modalities)
    n_query: int     # query items per class in this domain's episodes
    curate: Curate
    episodes: Episodes
    embed: Embed

    def __post_init__(self):
        _require(self.n_query >= 1, f"n_query={self.n_query} must be >= 1")


@dataclass(frozen=True)
class Model:
    """One row of the comparison: a method on a backbone, trained (or not) with these settings.
    Keys an entry leaves out come from params `model_defaults`."""

    domain: str            # a key of params `domains`: the data it is trained and evaluated on
    method: str
    backbone: str
    freeze: bool           # pretrained backbones only; false fine-tunes it from raw inputs
    head_dim: int          # trainable projection after the backbone; 0 = none
    episodes: int          # training episodes; 0 = no training
    train_n_way: int
    train_n_query: int     # query items per class of training episodes; 0 = the domain's n_query
    lr: float
    options: dict          # the method's own, checked by the method
    pretrain_steps: int    # supervised pretraining of a trained backbone on the training classes

    def __post_init__(self):
        _require(self.train_n_query >= 0, f"train_n_query={self.train_n_query} must be >= 0 "
                 "(0 = the domain's n_query)")
        _require(self.pretrain_steps >= 0,
                 f"pretrain_steps={self.pretrain_steps} must be >= 0 (0 = episodic training only)")
        _require(self.episodes >= 0 and self.train_n_way >= 2 and self.lr > 0 and self.head_dim >= 0,
                 f"episodes={self.episodes} must be >= 0, train_n_way={self.train_n_way} >= 2, "
                 f"lr={self.lr} > 0 and head_dim={self.head_dim} >= 0")


@dataclass(frozen=True)
class Train:
    weight_decay: float
    val_every: int
    val_episodes: int

    def __post_init__(self):
        _require(self.weight_decay >= 0 and self.val_every >= 1 and self.val_episodes >= 1,
                 f"weight_decay={self.weight_decay} must be >= 0, val_every={self.val_every} and "
                 f"val_episodes={self.val_episodes} >= 1")


@dataclass(frozen=True)
class Evaluate:
    ece_bins: int
    latency_episodes: int
    latency_warmup: int
    latency_queries: int   # queries timed per episode, one at a time
    latency_repeats: int   # runs of each timed call; the fastest is kept

    def __post_init__(self):
        _require(min(self.ece_bins, self.latency_episodes, self.latency_queries,
                     self.latency_repeats) >= 1 and self.latency_warmup >= 0,
                 f"ece_bins={self.ece_bins}, latency_episodes={self.latency_episodes}, "
                 f"latency_queries={self.latency_queries} and latency_repeats="
                 f"{self.latency_repeats} must be >= 1, latency_warmup={self.latency_warmup} >= 0")


@dataclass(frozen=True)
class Tracking:
    experiment: str


@dataclass(frozen=True)
class Gate:
    """Tolerances of the regression gate (`python -m fewshot.gate`)."""

    accuracy_drop: float     # fail when the paired drop exceeds this and its CI excludes 0
    confidence: float        # of the paired accuracy CI
    ece_increase: float      # fail when calibrated ECE rises by more than this
    latency_ratio: float     # fail when query p50 exceeds baseline x this (same device only)
    latency_min_ms: float    # ... and by more than this many ms
    machine_noise_factor: float  # accuracy / ECE limits are at least this x the baseline's machine noise

    def __post_init__(self):
        _require(0 < self.confidence < 1 and min(self.accuracy_drop, self.ece_increase,
                                                  self.latency_min_ms, self.machine_noise_factor) >= 0
                 and self.latency_ratio >= 1,
                 f"confidence={self.confidence} must be in (0, 1), accuracy_drop={self.accuracy_drop}, "
                 f"ece_increase={self.ece_increase}, latency_min_ms={self.latency_min_ms} and "
                 f"machine_noise_factor={self.machine_noise_factor} >= 0, "
                 f"latency_ratio={self.latency_ratio} >= 1")


@dataclass(frozen=True)
class Params:
    seed: int
    n_way: int
    n_shot: int
    domains: dict[str, Domain]  # the benchmarks one `dvc repro` builds
    model_defaults: dict        # what a `models` entry leaves out
    models: dict[str, Model]
    train: Train
    evaluate: Evaluate
    tracking: Tracking
    gate: Gate

    def __post_init__(self):
        _require(self.n_way >= 2 and self.n_shot >= 1,
                 f"n_way={self.n_way} must be >= 2 and n_shot={self.n_shot} >= 1")
        _require(bool(self.domains), "params 'domains' is empty; add at least one (docs/data.md)")
        _require(bool(self.models), "params 'models' is empty; add at least one entry (docs/methods.md)")

    def domain_of(self, model: str) -> tuple[str, Domain]:
        """(domain name, its settings) of a `models` entry."""
        name = self.models[model].domain
        return name, self.domains[name]


def load(path: str | Path = "params.yaml", models: bool = True) -> Params:
    """Read and validate a params file (`models=False`: all but the rules that involve backbones
    and methods, for stages that build no model; `fewshot.core.consistency`).

    Raises:
        UserError: the file is missing, a key is unknown, or a value has the wrong type.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"params file '{path}' not found; run from the repository root")
    raw = yaml.safe_load(path.read_text()) or {}
    params = from_dict(raw)
    from fewshot.core.consistency import check

    check(params, models)
    return params


def from_dict(raw: dict, cls: type = Params, prefix: str = "") -> typing.Any:
    """Build `cls` from a nested dict, rejecting unknown keys and wrong types.

    >>> from_dict({"val_episodes": 9, "test_episodes": 90}, Episodes).test_episodes
    90
    >>> from_dict({"trian": {}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fewshot.core.errors.UserError: unknown params key 'trian'; valid keys: seed, n_way, ..., train, ...
    >>> from_dict({"val_episodes": 9}, Episodes, "episodes.")
    Traceback (most recent call last):
    fewshot.core.errors.UserError: params section 'episodes' lacks required key(s) test_episodes
    """
    if cls is Params and isinstance(raw, dict) and isinstance(raw.get("models"), dict):
        defaults = raw.get("model_defaults") or {}
        raw = raw | {"models": {name: (defaults | entry if isinstance(entry, dict) else entry)
                                for name, entry in raw["models"].items()}}
    return typed.build(raw, cls, prefix)


def section(params: Params, *names: str) -> dict:
    """The named parts of `params` as a flat dict, for logging (`train.lr`, `models.x.lr`, ...)."""
    flat: dict = {}
    for name in names:
        value = params
        for part in name.split("."):
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        flat |= typed.flatten(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value, name)
    return flat
