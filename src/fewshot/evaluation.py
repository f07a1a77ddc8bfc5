"""Pooling per-episode results into the reported metrics, and timing a method from pixels."""

from __future__ import annotations

import platform
import time

import numpy as np
import pandas as pd
import torch

from fewshot import metrics
from fewshot.calibration import at_bound, fit_temperature, scaled_probs
from fewshot.episodes import iter_episodes
from fewshot.methods.base import FewShotMethod
from fewshot.training import ItemInputs


def summarise(results: list[dict], n_bins: int, temperature: float = 1.0
              ) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(metrics, per-episode records, reliability bins) of scored episodes at a temperature."""
    probs_per_episode = [scaled_probs(r["logits"], temperature) for r in results]
    per_episode = np.array([np.mean(p.argmax(1) == r["labels"])
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


@torch.no_grad()
def time_from_pixels(method: FewShotMethod, images: ItemInputs, table: pd.DataFrame,
                     n_episodes: int, warmup: int) -> dict:
    """Support-set processing per episode and single-query prediction, both from decoded images.

    The first `warmup` episodes are run but not timed.
    """
    method.eval()
    support_ms, query_ms = [], []
    for index, (support, query) in enumerate(iter_episodes(table)):
        if index >= n_episodes + warmup:
            break
        episode = images.episode(support, query)
        start = time.perf_counter()
        method.process_support_set(episode.support, episode.support_labels, episode.class_text)
        after_support = time.perf_counter()
        per_query = []
        for q in range(len(episode.query)):
            t0 = time.perf_counter()
            method(episode.query[q : q + 1])
            per_query.append((time.perf_counter() - t0) * 1000)
        if index >= warmup:
            support_ms.append((after_support - start) * 1000)
            query_ms += per_query
    timing = {f"support_{k}": v for k, v in metrics.latency_summary(support_ms).items()}
    timing |= {f"query_{k}": v for k, v in metrics.latency_summary(query_ms).items()}
    return timing | {"timed_episodes": len(support_ms)}


def device_name() -> str:
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
