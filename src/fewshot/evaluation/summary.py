"""Pooling per-episode results into the reported metrics: accuracy ± CI, ECE, NLL, Brier, before
and after temperature scaling; and the warnings a number needs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fewshot.evaluation import metrics
from fewshot.evaluation.calibration import at_bound, fit_temperature, scaled_probs


def summarise(results: list[dict], n_bins: int, temperature: float = 1.0
              ) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(metrics, per-episode records, reliability bins) of scored episodes at a temperature."""
    probs_per_episode = [scaled_probs(r["logits"], temperature) for r in results]
    per_episode = np.array([metrics.accuracy(p, r["labels"])
                            for p, r in zip(probs_per_episode, results, strict=True)])
    probs = np.concatenate(probs_per_episode)
    labels = np.concatenate([r["labels"] for r in results])
    mean, half = metrics.mean_ci95(per_episode)
    summary = {
        "accuracy": mean, "accuracy_ci95": half,
        "ece": metrics.expected_calibration_error(probs, labels, n_bins),
        "nll": metrics.negative_log_likelihood(probs, labels),
        "brier": metrics.brier_score(probs, labels),
        "episodes": len(results), "queries": len(labels),
    }
    records = pd.DataFrame({"episode_id": np.arange(len(results)), "accuracy": per_episode,
                            "mean_confidence": [p.max(1).mean() for p in probs_per_episode]})
    return summary, records, metrics.reliability_bins(probs, labels, n_bins)


def confusion(results: list[dict], table: pd.DataFrame) -> pd.DataFrame:
    """Queries per (true class, predicted class), pooled over the episodes of `table` (labels mapped
    back to class ids through each episode's support rows). Sparse: pairs that never happened are left
    out (a 247-class image test split would otherwise write 61,009 rows, almost all zeros).

    >>> table = pd.DataFrame({"episode_id": [0, 0, 0, 0], "role": ["support"] * 2 + ["query"] * 2,
    ...                       "label": [0, 1, 0, 1], "class_id": ["a", "b", "a", "b"]})
    >>> results = [{"labels": np.array([0, 1]), "logits": np.array([[0.0, 1.0], [0.0, 1.0]])}]
    >>> confusion(results, table).values.tolist()
    [['a', 'b', 1], ['b', 'b', 1]]
    """
    pairs = []
    support = table[table["role"] == "support"].drop_duplicates(["episode_id", "label"])
    class_of = {(e, label): c for e, label, c in
                support[["episode_id", "label", "class_id"]].itertuples(index=False)}
    for episode, result in zip(sorted(table["episode_id"].unique()), results, strict=True):
        predicted = np.asarray(result["logits"]).argmax(1)
        pairs += [(class_of[(episode, t)], class_of[(episode, p)])
                  for t, p in zip(result["labels"], predicted, strict=True)]
    counts = pd.Series(pairs, dtype=object).value_counts() if pairs else pd.Series(dtype=int)
    return pd.DataFrame(sorted((t, p, int(n)) for (t, p), n in counts.items()),
                        columns=["true_class", "predicted_class", "queries"])


def calibrated(val_results: list[dict], test_results: list[dict], n_bins: int
               ) -> tuple[dict, pd.DataFrame]:
    """Temperature fitted on val episodes; test ECE/NLL/Brier at that temperature, and its bins."""
    temperature = fit_temperature([r["logits"] for r in val_results],
                                  [r["labels"] for r in val_results])
    summary, _, bins = summarise(test_results, n_bins, temperature)
    picked = {f"{k}_calibrated": summary[k] for k in ("ece", "nll", "brier")}
    return picked | {"temperature": temperature}, bins


def result_warnings(summary: dict, n_way: int) -> list[str]:
    """Numbers that look fine but are not: each said in the stage output, metrics and report.

    >>> conse = {"accuracy": 0.177, "accuracy_ci95": 0.009, "temperature": 999.94}
    >>> result_warnings(conse, 5)  # doctest: +ELLIPSIS
    ['accuracy 0.177 ± 0.009 is below chance (0.200 for 5-way)...', 'temperature T=999.9 is at...']
    >>> result_warnings({"accuracy": 0.9, "accuracy_ci95": 0.01, "temperature": 1.2}, 5)
    []
    """
    found = []
    chance = 1 / n_way
    if summary["accuracy"] + summary["accuracy_ci95"] < chance:  # the whole CI below chance
        found.append(f"accuracy {summary['accuracy']:.3f} ± {summary['accuracy_ci95']:.3f} is below "
                     f"chance ({chance:.3f} for {n_way}-way): the model ranks the right class low")
    if at_bound(summary["temperature"]):
        found.append(f"temperature T={summary['temperature']:.1f} is at the edge of its search range: "
                     "the fit found no optimum, so calibrated probabilities and ECE are not meaningful")
    return found
