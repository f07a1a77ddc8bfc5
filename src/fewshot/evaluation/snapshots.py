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
