"""Stage `report`: `reports/report.md` with a results table and figures, from the evaluate outputs.

Usage: python -m fewshot.stages.report        (run by `dvc repro`, from the repository root)
Params: methods
Reads: reports/metrics/<method>.json, reports/plots/. Writes: reports/report.md, reports/figures/*.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from fewshot import params as params_lib
from fewshot import paths  # noqa: E402
from fewshot.errors import UserError, one_line_errors  # noqa: E402
from fewshot.fileio import atomic_path  # noqa: E402
from fewshot.tracking import stage_run  # noqa: E402


@one_line_errors
def main() -> None:
    params = params_lib.load()
    results = _method_results(params.methods)
    with stage_run("report", params.tracking.experiment) as run:
        figures = {
            "reliability": _reliability_figure(results),
            "episode_accuracy": _episode_accuracy_figure(results),
            "latency": _latency_figure(results),
        }
        with atomic_path(paths.REPORT) as tmp:
            tmp.write_text(_markdown(results, figures))
        for path in [paths.REPORT, *figures.values()]:
            run.log_artifact(path, folder="report")
        print(f"report: {len(results)} method(s) -> {paths.REPORT}")


def _method_results(methods: list[str]) -> dict[str, dict]:
    missing = [m for m in methods if not (paths.METRICS / f"{m}.json").exists()]
    if missing or not methods:
        raise UserError(f"no metrics for methods {missing or methods} in {paths.METRICS}; "
                        "run their evaluate stages first")
    return {m: json.loads((paths.METRICS / f"{m}.json").read_text()) for m in methods}


def _save(fig: plt.Figure, name: str) -> Path:
    path = paths.FIGURES / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _reliability_figure(results: dict) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for name, r in results.items():
        bins = pd.read_csv(paths.PLOTS / name / "reliability.csv").dropna()
        line, = ax.plot(bins["confidence"], bins["accuracy"], marker="o",
                        label=f"{name} raw (ECE {r['ece']:.3f})")
        after = pd.read_csv(paths.PLOTS / name / "reliability_calibrated.csv").dropna()
        ax.plot(after["confidence"], after["accuracy"], marker="s", linestyle=":",
                color=line.get_color(),
                label=f"{name} T={r['temperature']:.2f} (ECE {r['ece_calibrated']:.3f})")
    ax.set(xlabel="confidence (top-label probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title="Reliability on test episodes")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, "reliability")


def _episode_accuracy_figure(results: dict) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in results:
        accuracy = pd.read_csv(paths.PLOTS / name / "episodes.csv")["accuracy"]
        ax.hist(accuracy, bins=20, range=(0, 1), alpha=0.6, label=name)
    ax.set(xlabel="episode accuracy", ylabel="episodes", title="Per-episode accuracy")
    ax.legend(fontsize=8)
    return _save(fig, "episode_accuracy")


def _latency_figure(results: dict) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(results)
    for offset, (key, label) in enumerate([("support", "support set"), ("query", "one query")]):
        p50 = [results[n]["latency"][f"{key}_p50_ms"] for n in names]
        p95 = [results[n]["latency"][f"{key}_p95_ms"] for n in names]
        xs = [i + offset * 0.4 for i in range(len(names))]
        ax.bar(xs, p50, width=0.4, label=f"{label} p50")
        upper = [b - a for a, b in zip(p50, p95, strict=True)]
        ax.errorbar(xs, p50, yerr=[[0] * len(p50), upper], fmt="none", ecolor="black", capsize=3)
    ax.set_xticks([i + 0.2 for i in range(len(names))], names)
    ax.set(ylabel="milliseconds (bar p50, whisker p95)", title="Latency from pixels")
    ax.legend(fontsize=8)
    return _save(fig, "latency")


def _markdown(results: dict, figures: dict[str, Path]) -> str:
    first = next(iter(results.values()))
    lines = [
        "# Few-shot results", "",
        f"{first['n_way']}-way {first['n_shot']}-shot, {first['n_query']} query per class; "
        f"{first['episodes']} test episodes (file hash `{first['episodes_hash'][:12]}`); "
        f"device: {first['device']}.", "",
        "| method | backbone | accuracy ± 95% CI | ECE raw → calibrated | NLL raw → calibrated "
        "| Brier | T | support p50 / p95 ms | query p50 / p95 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        t = r["latency"]
        lines.append(
            f"| {name} | {r['backbone']} | {r['accuracy']:.4f} ± {r['accuracy_ci95']:.4f} | "
            f"{r['ece']:.4f} → {r['ece_calibrated']:.4f} | {r['nll']:.4f} → {r['nll_calibrated']:.4f} | "
            f"{r['brier']:.4f} | {r['temperature']:.3f} | "
            f"{t['support_p50_ms']:.1f} / {t['support_p95_ms']:.1f} | "
            f"{t['query_p50_ms']:.1f} / {t['query_p95_ms']:.1f} |")
    lines += ["", "The CI is 1.96 · std(ddof=1) / √episodes over per-episode accuracies; ECE uses "
              "15 equal-width bins pooled over all query predictions; the temperature T is fitted "
              "by minimising NLL on the val episodes; latency is measured from decoded pixels "
              "after warm-up episodes.", ""]
    for title, path in figures.items():
        lines += [f"![{title}]({path.relative_to(paths.REPORT.parent).as_posix()})", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
