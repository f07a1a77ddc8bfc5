"""Presets and sweeps from `pipelines/`, run as DVC experiments: one command each.

Usage:
  python -m fewshot.tools.experiments run PRESET [--name NAME]      one `dvc exp run` with the preset's keys
  python -m fewshot.tools.experiments sweep SWEEP [--jobs N]        queue the grid, run it with N workers,
                                                              print the comparison table (also
                                                              reports/sweeps/SWEEP.md and .png)
  python -m fewshot.tools.experiments flags PRESET                  print the `-S key=value` overrides

A preset (`pipelines/<name>.yaml`) holds only the keys it changes; it becomes `-S` overrides, so
`params.yaml` stays the single tracked configuration. A sweep (`pipelines/sweep_<name>.yaml`)
names an optional base preset and a grid:

  preset: smoke            # optional
  grid: {n_way: [5, 20], n_shot: [1, 5]}
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import time
from pathlib import Path

import pandas as pd
import yaml

from fewshot.core import params as params_lib
from fewshot.core import typed
from fewshot.core.errors import UserError, one_line_errors
from fewshot.core.fileio import atomic_path
from fewshot.tools.queue_workers import stop_idle_workers

PIPELINES = Path("pipelines")
SWEEPS = Path("reports/sweeps")  # a sweep's table and accuracy-vs-shots figure


def overrides(preset: dict, base: dict | None = None, prefix: str = "") -> list[str]:
    """`key=value` overrides of every leaf of a nested preset, values in YAML flow syntax.

    A key that `base` (params.yaml) lacks, e.g. a new model entry, gets DVC's `+` (append) prefix;
    DVC refuses to override a key that does not exist without it.

    >>> overrides({"n_way": 3, "models": {"p": {"lr": 0.1}, "new": {"method": "protonet"}}},
    ...           {"n_way": 5, "models": {"p": {"lr": 0.2}}})
    ['n_way=3', 'models.p.lr=0.1', '+models.new.method="protonet"']
    """
    flat = []
    for key, value in preset.items():
        inner = base.get(key) if isinstance(base, dict) else None
        if isinstance(value, dict) and value:
            nested = None if base is None else (inner if isinstance(inner, dict) else {})
            flat += overrides(value, nested, f"{prefix}{key}.")
        else:
            known = isinstance(base, dict) and key in base
            flat.append(f"{'' if known or base is None else '+'}{prefix}{key}={json.dumps(value)}")
    return flat


def load_preset(name: str, folder: Path = PIPELINES) -> dict:
    """A preset, checked against params.yaml's schema so a typo fails before anything is queued."""
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("sweep_"))
        raise UserError(f"no preset '{name}' in {folder}/; presets: {', '.join(known)}")
    preset = yaml.safe_load(path.read_text()) or {}
    params_lib.from_dict(typed.merged(_base(), preset))
    return preset


def _base() -> dict:
    return yaml.safe_load(Path("params.yaml").read_text()) if Path("params.yaml").exists() else {}


def grid_points(sweep: dict) -> list[dict]:
    """Every combination of the grid, in order.

    >>> [tuple(p.values()) for p in grid_points({"grid": {"n_way": [5, 20], "n_shot": [1, 5]}})]
    [(5, 1), (5, 5), (20, 1), (20, 5)]
    """
    grid = sweep.get("grid") or {}
    if not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise UserError(f"a sweep needs 'grid': a mapping of keys to non-empty lists, got {grid!r}")
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def experiment_name(sweep: str, point: dict) -> str:
    """A DVC experiment name for one grid point.

    >>> experiment_name("ways_shots", {"n_way": 5, "models.p.lr": 0.1})
    'ways_shots-n_way5-models.p.lr0.1'
    """
    return "-".join([sweep] + [f"{k}{v}" for k, v in point.items()])


def _dvc(args: list[str], check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise UserError(f"dvc {' '.join(args)} failed: {(done.stderr or done.stdout).strip()}")
    return done


def _flags(items: list[str]) -> list[str]:
    return [part for item in items for part in ("-S", item)]


def run_preset(name: str, exp_name: str | None) -> None:
    preset = load_preset(name)
    flags = _flags(overrides(preset, _base()))
    subprocess.run(["dvc", "exp", "run", "-n", exp_name or name, *flags], check=True)


def run_sweep(name: str, jobs: int) -> list[str]:
    """Queue every grid point as a named experiment, run the queue with `jobs` workers, wait."""
    path = PIPELINES / f"sweep_{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("sweep_") for p in PIPELINES.glob("sweep_*.yaml"))
        raise UserError(f"no sweep '{name}' ({path}); sweeps: {', '.join(known)}")
    sweep = yaml.safe_load(path.read_text()) or {}
    base = overrides(load_preset(sweep["preset"]), _base()) if sweep.get("preset") else []
    names = []
    for point in grid_points(sweep):
        exp = experiment_name(name, point)
        _dvc(["exp", "run", "--queue", "-n", exp, *_flags(base + overrides(point, _base()))])
        names.append(exp)
        print(f"queued {exp}")
    # Not `_dvc`: the workers `queue start` leaves behind inherit its output pipes, and reading
    # them to their end would wait for the last worker to exit, which one may never do.
    subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_queue()
    stop_idle_workers()
    failed = [line for line in _dvc(["queue", "status"]).stdout.splitlines() if "Failed" in line]
    if failed:
        raise UserError(f"{len(failed)} experiment(s) failed: {failed[0].split()[0]}...; "
                        "see `dvc queue logs NAME`")
    return names


def _wait_for_queue(poll_s: float = 5.0) -> None:
    while True:
        status = _dvc(["queue", "status"]).stdout
        if not any(word in status for word in ("Queued", "Running")):
            return
        time.sleep(poll_s)


def comparison(names: list[str]) -> pd.DataFrame:
    """One row per experiment and model, from `dvc exp show --json`."""
    shown = json.loads(_dvc(["exp", "show", "--json", "-A"]).stdout)
    rows = []
    for exp in _experiments(shown):
        if exp["name"] not in names:
            continue
        for path, metrics in sorted(exp["metrics"].items()):
            if "accuracy" not in metrics:
                continue
            rows.append({"experiment": exp["name"], "n_way": exp["params"].get("n_way"),
                         "n_shot": exp["params"].get("n_shot"), "model": Path(path).stem,
                         "accuracy": metrics["accuracy"], "accuracy_ci95": metrics["accuracy_ci95"],
                         "ece_calibrated": metrics["ece_calibrated"]})
    found = {row["experiment"] for row in rows}
    if missing := [name for name in names if name not in found]:
        raise UserError(f"no results for experiment(s) {', '.join(missing)} in `dvc exp show`")
    return pd.DataFrame(rows).sort_values(["n_way", "n_shot", "model"], ignore_index=True)


def comparison_table(frame: pd.DataFrame) -> str:
    """Markdown of `comparison`."""
    lines = ["| experiment | n_way | n_shot | model | accuracy ± 95% CI | ECE calibrated |",
             "|---|---|---|---|---|---|"]
    for row in frame.itertuples():
        lines.append(f"| {row.experiment} | {row.n_way} | {row.n_shot} | {row.model} | "
                     f"{row.accuracy:.4f} ± {row.accuracy_ci95:.4f} | {row.ece_calibrated:.4f} |")
    return "\n".join(lines)


def comparison_figure(frame: pd.DataFrame, path: Path) -> None:
    """Accuracy vs shots, one line per model, one panel per n_way."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ways = sorted(frame["n_way"].unique())
    fig, axes = plt.subplots(1, len(ways), figsize=(4.5 * len(ways), 3.6), squeeze=False,
                             sharey=True)
    for ax, n_way in zip(axes[0], ways, strict=True):
        for model, rows in frame[frame["n_way"] == n_way].groupby("model"):
            rows = rows.sort_values("n_shot")
            ax.errorbar(rows["n_shot"], rows["accuracy"], yerr=rows["accuracy_ci95"], marker="o",
                        capsize=3, label=model)
        ax.set(title=f"{n_way}-way", xlabel="shots per class", xticks=sorted(frame["n_shot"].unique()))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (95% CI)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _experiments(shown: list) -> list[dict]:
    """Name, params.yaml values and metrics files of every experiment in `dvc exp show --json`."""
    found = []
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for revision in exp.get("revs") or []:
                data = revision.get("data") or {}
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                metrics = {p: m.get("data", {}) for p, m in (data.get("metrics") or {}).items()}
                found.append({"name": revision.get("name") or exp.get("name"), "params": params,
                              "metrics": metrics})
    return found


@one_line_errors
def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m fewshot.tools.experiments",
                                     description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="one experiment with a preset's keys")
    run.add_argument("preset")
    run.add_argument("--name", help="experiment name (default: the preset's)")
    sweep = commands.add_parser("sweep", help="queue a grid, run it in parallel, print the table")
    sweep.add_argument("sweep")
    sweep.add_argument("--jobs", type=int, default=2, help="parallel queue workers (default 2)")
    flags = commands.add_parser("flags", help="print a preset's -S overrides")
    flags.add_argument("preset")
    args = parser.parse_args()
    if args.command == "flags":
        print(" ".join(f"-S '{item}'" for item in overrides(load_preset(args.preset), _base())))
    elif args.command == "run":
        run_preset(args.preset, args.name)
    else:
        names = run_sweep(args.sweep, args.jobs)
        frame = comparison(names)
        table = comparison_table(frame)
        out = SWEEPS / args.sweep
        with atomic_path(out.with_suffix(".md")) as tmp:
            tmp.write_text(f"# Sweep `{args.sweep}`\n\n{table}\n\n![accuracy vs shots]({out.name}.png)\n")
        comparison_figure(frame, out.with_suffix(".png"))
        print(table)
        print(f"\nwrote {out}.md and {out}.png")


if __name__ == "__main__":
    main()
