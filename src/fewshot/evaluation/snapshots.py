"""Where the gate's results come from: a snapshot of every model's gate-relevant results, read from
the workspace's reports/, from a git revision's committed reports/ (`git show`), or from a
snapshot file written by `python -m fewshot.gate snapshot`."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Callable

import pandas as pd

from fewshot.core import paths
from fewshot.core.errors import UserError
from fewshot.data import episodes as episodes_lib

# Metrics that must not change between two runs of the same inputs (latency and training time may).
DETERMINISTIC = ("accuracy", "accuracy_ci95", "ece", "ece_calibrated", "nll", "nll_calibrated",
                 "brier", "brier_calibrated", "temperature", "episodes_hash")
Reader = Callable[[str], str | None]


def snapshot(read: Reader, names: list[str], episode_hashes: dict | None = None) -> dict:
    """Every model's gate-relevant results, from the files `read` returns (workspace or git)."""
    models = {}
    for name in names:
        metrics = json.loads(read(f"{paths.METRICS.as_posix()}/{name}.json") or "{}")
        if "accuracy" not in metrics or "episodes_hash" not in metrics:
            continue  # curate.json and other non-model metrics
        episodes = read(f"{paths.PLOTS.as_posix()}/{name}/episodes.csv")
        if episodes is None:
            raise UserError(f"model '{name}' has metrics but no {paths.PLOTS}/{name}/episodes.csv; "
                            f"re-run evaluate@{name}")
        frame = pd.read_csv(io.StringIO(episodes)).sort_values("episode_id")
        latency = metrics.get("latency") or {}
        models[name] = {key: metrics.get(key) for key in DETERMINISTIC} | {
            "device": metrics.get("device"), "query_p50_ms": latency.get("query_p50_ms"),
            "query_cpu_p50_ms": latency.get("query_cpu_p50_ms"),
            "per_episode": [float(a) for a in frame["accuracy"]]}
    return {"episodes": episode_hashes or {}, "models": models}


def workspace_snapshot() -> dict:
    names = sorted(p.stem for p in paths.METRICS.glob("*.json"))
    if not names:
        raise UserError(f"no results in {paths.METRICS}/; run `dvc repro` first")
    hashes = {f"{path.parent.parent.name}/{path.stem}": episodes_lib.file_hash(path)
              for path in sorted(Path("data").glob("*/episodes/*.parquet"))}  # domain/split
    result = snapshot(lambda path: Path(path).read_text() if Path(path).is_file() else None,
                      names, hashes)
    if not result["models"]:
        raise UserError(f"no model results in {paths.METRICS}/; run `dvc repro` first")
    return result


def revision_snapshot(revision: str) -> dict:
    """The results committed at a git revision."""
    listing = _git(["ls-tree", "--name-only", f"{revision}:{paths.METRICS.as_posix()}"])
    if listing is None:
        raise UserError(f"git revision '{revision}' has no {paths.METRICS}/ to compare with")
    names = sorted(Path(line).stem for line in listing.splitlines() if line.endswith(".json"))
    return snapshot(lambda path: _git(["show", f"{revision}:{path}"]), names)


def load_baseline(baseline: str) -> dict:
    """A snapshot file, or else a git revision."""
    path = Path(baseline)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"baseline file '{path}' is not JSON ({err}); expected a file written "
                            "by `python -m fewshot.gate snapshot`") from None
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise UserError(f"baseline file '{path}' has no 'models'; expected a file written by "
                            "`python -m fewshot.gate snapshot`")
        return data
    if _git(["rev-parse", "--verify", "--quiet", f"{baseline}^{{commit}}"]) is None:
        raise UserError(f"baseline '{baseline}' is neither a snapshot file nor a git revision")
    return revision_snapshot(baseline)


def _git(args: list[str]) -> str | None:
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def with_machine_noise(base: dict, replicates: dict[str, dict]) -> dict:
    """The baseline `base` with, per model, how far its accuracy and calibrated ECE moved in
    `replicates` (label -> snapshot): the same inputs, code and episodes run again with another
    floating-point path (thread count, CPU instruction set). Trained models' numbers are not
    bit-identical across machines: a different summation order changes the weights a little and
    training amplifies it. The gate's limits for a model are at least `gate.machine_noise_factor`
    x its largest move (`machine_noise`), so a baseline made on one machine gates runs on another.

    >>> entry = {"episodes_hash": "h", "per_episode": [1.0, 0.5], "ece_calibrated": 0.10}
    >>> base = {"models": {"m": entry}}
    >>> other = {"models": {"m": entry | {"per_episode": [0.5, 0.5], "ece_calibrated": 0.13}}}
    >>> noisy = with_machine_noise(base, {"1-thread": other})["models"]["m"]["machine_noise"]
    >>> noisy["accuracy"], round(noisy["ece_calibrated"], 4), noisy["runs"]
    (0.25, 0.03, {'1-thread': {'accuracy': 0.5, 'ece_calibrated': 0.13}})
    """
    models = {}
    for name, entry in base["models"].items():
        runs = {}
        for label, snap in replicates.items():
            other = snap["models"].get(name)
            if other is None:
                raise UserError(f"machine-noise run '{label}' has no results for model '{name}'; "
                                "expected the same preset and code as the baseline run")
            if other.get("episodes_hash") != entry.get("episodes_hash"):
                raise UserError(f"machine-noise run '{label}' evaluated model '{name}' on other test "
                                "episodes; expected the same preset and code as the baseline run")
            if not other.get("per_episode") or (other.get("ece_calibrated") is None) != (
                    entry.get("ece_calibrated") is None):
                raise UserError(f"machine-noise run '{label}' has no per-episode results or calibrated "
                                f"ECE for model '{name}'; expected a file written by `gate snapshot`")
            runs[label] = {"accuracy": mean(other["per_episode"]),
                           "ece_calibrated": other.get("ece_calibrated")}
        acc, ece = mean(entry["per_episode"]), entry.get("ece_calibrated")
        models[name] = entry | {"machine_noise": {
            "accuracy": max((abs(r["accuracy"] - acc) for r in runs.values()), default=0.0),
            "ece_calibrated": max((abs(r["ece_calibrated"] - ece) for r in runs.values()
                                   if ece is not None), default=0.0),
            "runs": runs}}
    return base | {"models": models}


def moved_models(noisy: dict, label: str) -> list[str]:
    """The models whose accuracy or calibrated ECE differ in rerun `label` of a baseline written by
    `with_machine_noise` (none: the rerun took the baseline's own float path)."""
    return [name for name, entry in noisy["models"].items()
            if entry["machine_noise"]["runs"][label] != {"accuracy": mean(entry["per_episode"]),
                                                         "ece_calibrated": entry.get("ece_calibrated")}]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def record_machine_noise(baseline: str, items: list[str]) -> list[str]:
    """`gate noise BASELINE LABEL=FILE...`: rewrite the baseline file with the machine noise of the
    labelled reruns; return what to print.

    Raises:
        UserError: an item that is not LABEL=FILE of a snapshot file with a label of its own, or a
            baseline that is not a snapshot file.
    """
    from fewshot.core.fileio import atomic_path

    runs = {}
    for item in items:
        label, _, file = item.partition("=")
        if not label or not file or label in runs or not Path(file).is_file():
            raise UserError(f"machine-noise run '{item}' is not LABEL=FILE with a snapshot file and "
                            "a label of its own")
        runs[label] = load_baseline(file)
    if not Path(baseline).is_file():
        raise UserError(f"baseline '{baseline}' is not a snapshot file; expected the file "
                        "`gate snapshot` wrote (it is rewritten with the noise)")
    noisy = with_machine_noise(load_baseline(baseline), runs)
    lines = []
    for label in runs:
        moved = moved_models(noisy, label)
        lines.append(f"run '{label}': {len(moved)} of {len(noisy['models'])} models moved"
                     + ("" if moved else " (the baseline's own float path? it adds no noise)"))
    with atomic_path(Path(baseline)) as tmp:
        tmp.write_text(json.dumps(noisy, indent=1, sort_keys=True) + "\n")
    lines.append(f"wrote {baseline}: machine noise of {len(noisy['models'])} models, {len(runs)} reruns")
    return lines
