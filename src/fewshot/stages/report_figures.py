"""The report stage's figures, per domain: accuracy ± CI, reliability diagrams, per-episode
accuracy, latency, and the confusion matrix of the domain's best model; each a PNG under
reports/figures/<kind>_<domain>.png."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fewshot.core import paths  # noqa: E402
from fewshot.core.fileio import atomic_path  # noqa: E402

SPARSE_BIN = 20  # reliability points from fewer queries than this are labelled with their count


def figures(domain: str, results: dict) -> dict[str, Path]:
    return {"accuracy": _accuracy_figure(domain, results),
            "confusion": _confusion_figure(domain, results),
            "reliability": _reliability_figure(domain, results),
            "episode_accuracy": _episode_accuracy_figure(domain, results),
            "latency": _latency_figure(domain, results)}


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


MAX_CONFUSION_CLASSES = 20


def confusion_shares(counts: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(true x predicted share of each true class's queries, a note on what is shown) from the sparse
    counts evaluate writes; above MAX_CONFUSION_CLASSES classes, the classes with the most
    misclassified queries.

    >>> counts = pd.DataFrame({"true_class": ["a", "a", "b"], "predicted_class": ["a", "b", "b"],
    ...                        "queries": [3, 1, 2]})
    >>> confusion_shares(counts)[0].values.tolist()
    [[0.75, 0.25], [0.0, 1.0]]
    """
    matrix = counts.pivot_table(index="true_class", columns="predicted_class", values="queries",
                                aggfunc="sum", fill_value=0)
    classes = sorted(set(matrix.index) | set(matrix.columns))
    matrix = matrix.reindex(index=classes, columns=classes, fill_value=0)
    share = matrix.div(matrix.sum(axis=1).clip(lower=1), axis=0)
    if len(classes) <= MAX_CONFUSION_CLASSES:
        return share, ""
    errors = matrix.sum(axis=1) - np.diag(matrix.to_numpy())
    kept = sorted(errors.sort_values(ascending=False, kind="stable").index[:MAX_CONFUSION_CLASSES])
    return (share.loc[kept, kept],
            f"; the {MAX_CONFUSION_CLASSES} of {len(classes)} classes most often misclassified")


def best_model(results: dict) -> str:
    """The model with the highest test accuracy (the first listed on a tie)."""
    return max(results, key=lambda name: results[name]["accuracy"])


def _confusion_figure(domain: str, results: dict) -> Path:
    """Row-normalised confusion matrix of the domain's best model, pooled over the test episodes;
    past MAX_CONFUSION_CLASSES classes only the most often misclassified ones (rows and columns), so
    a 247-class image split stays readable."""
    name = best_model(results)
    share, shown = confusion_shares(pd.read_csv(paths.PLOTS / name / "confusion.csv"))
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
                 f"(pooled over {results[name]['episodes']} test episodes{shown})")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(fig, f"confusion_{domain}")
