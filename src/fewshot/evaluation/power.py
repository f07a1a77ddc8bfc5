"""Would the regression gate see a drop of a given size? The paired rule's power per model, from
the per-episode variance of a baseline (`python -m fewshot.gate power`)."""

from __future__ import annotations

import math

from fewshot.core import params as params_lib


def power(per_episode: list[float], drop: float, gate: params_lib.Gate, noise: float = 0.0) -> dict:
    """How well the paired rule sees a true accuracy drop `drop` on these episodes.

    The rule fails a model when the mean paired drop exceeds `gate.accuracy_drop` and the CI's upper
    end is below zero. The standard error of the paired mean is taken as sqrt(2) x the per-episode
    SD / sqrt(n) (two independent runs: the worst case). A baseline with machine noise `noise` raises
    the limit to `gate.machine_noise_factor` x it. `detectable` is the smallest drop seen with 80%
    power.

    >>> rule = params_lib.Gate(0.01, 0.95, 0.02, latency_ratio=2.0, latency_min_ms=5.0,
    ...                         machine_noise_factor=2.0)
    >>> row = power([0.0, 0.5, 1.0, 0.5] * 100, 0.02, rule)
    >>> round(row["se"], 4), round(row["detectable"], 4), round(row["power"], 2)
    (0.025, 0.0703, 0.12)
    """
    from scipy import stats

    n = len(per_episode)
    mean = sum(per_episode) / n
    sd = math.sqrt(sum((a - mean) ** 2 for a in per_episode) / (n - 1))
    se = math.sqrt(2) * sd / math.sqrt(n)
    need = max(gate.accuracy_drop, gate.machine_noise_factor * noise,
               float(stats.t.ppf((1 + gate.confidence) / 2, n - 1)) * se)
    return {"episodes": n, "sd": sd, "se": se, "detectable": need + float(stats.norm.ppf(0.8)) * se,
            "power": float(stats.norm.sf((need - drop) / se)) if se > 0 else float(drop > need)}


def power_table(snapshot: dict, drop: float, gate: params_lib.Gate) -> str:
    lines = [f"| model | test episodes | per-episode SD | machine noise | smallest drop seen at 80% "
             f"power | power for a {drop:.3f} drop |", "|---|---|---|---|---|---|"]
    for name, entry in sorted(snapshot["models"].items()):
        noise = (entry.get("machine_noise") or {}).get("accuracy")
        row = power(entry["per_episode"], drop, gate, noise or 0.0)
        lines.append(f"| {name} | {row['episodes']} | {row['sd']:.3f} | "
                     f"{'–' if noise is None else f'±{noise:.4f}'} | {row['detectable']:.4f} | "
                     f"{row['power']:.2f} |")
    return "\n".join(lines)
