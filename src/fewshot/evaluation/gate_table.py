"""The regression gate's markdown table: per model, baseline and current numbers, the paired
difference, the machine noise the baseline recorded, and the verdict."""

from __future__ import annotations


def table(rows: list[dict], confidence: float) -> str:
    pct = f"{confidence:.0%}"
    lines = [f"| model | accuracy: baseline → current | paired Δ [{pct} CI] | "
             "ECE calibrated: baseline → current | query p50 ms: baseline → current | "
             "machine noise: accuracy, ECE | verdict |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        base, cur, paired = row["base"] or {}, row["cur"] or {}, row["paired"]
        delta = (f"{paired.mean:+.4f} [{paired.low:+.4f}, {paired.high:+.4f}]" if paired else "")
        verdict = ("**REGRESSION**: " + "; ".join(row["problems"]) if row["problems"]
                   else "new (no baseline)" if row.get("new") else "ok")
        lines.append(f"| {row['model']} | {_pair(_mean(base), _mean(cur), 'accuracy', '.4f')} | {delta} | "
                     f"{_pair(base, cur, 'ece_calibrated', '.4f')} | "
                     f"{_pair(base, cur, 'query_p50_ms', '.1f')} | {_noise(base)} | {verdict} |")
    return "\n".join(lines)


def _noise(entry: dict) -> str:
    noise = entry.get("machine_noise")
    return f"±{noise['accuracy']:.4f}, ±{noise['ece_calibrated']:.4f}" if noise else "–"


def _mean(entry: dict) -> dict:
    """The entry with accuracy as the mean of its per-episode results (what the paired test sees)."""
    episodes = entry.get("per_episode")
    return entry | {"accuracy": sum(episodes) / len(episodes)} if episodes else entry


def _pair(base: dict, cur: dict, key: str, spec: str) -> str:
    def fmt(value: float | None) -> str:
        return "–" if value is None else format(value, spec)
    return f"{fmt(base.get(key))} → {fmt(cur.get(key))}"
