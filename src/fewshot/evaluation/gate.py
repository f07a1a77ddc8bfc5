"""Regression gate: compare the current results with a baseline; exit 1 on a regression.

Usage:
  python -m fewshot.gate compare BASELINE [--exact] [--out FILE]
  python -m fewshot.gate snapshot FILE
  python -m fewshot.gate power [BASELINE] [--drop 0.02]
  python -m fewshot.gate noise BASELINE LABEL=FILE...
  python -m fewshot.gate promote BASELINE [--alias champion] [--prefix fewshot-]

BASELINE is a snapshot file (written by `snapshot`; the smoke preset's is committed as
pipelines/baselines/smoke.json) or any git revision (`HEAD~1`, `main`, a tag) whose committed
reports/ are read with `git show`. The current results are reports/ of the workspace.

Per model of the baseline:
- accuracy: a paired comparison of per-episode accuracy on the identical test episodes; a
  regression is a mean drop larger than params `gate.accuracy_drop` whose CI (`gate.confidence`,
  Student t) excludes zero;
- calibrated ECE: a rise larger than `gate.ece_increase`;
- query latency p50: above `gate.latency_ratio` x the baseline and by more than
  `gate.latency_min_ms`, compared only when both ran on the same device, and only when the query's
  CPU time grew by that ratio too: wall time that grows while CPU time does not is the machine
  busy with other work (a loaded CI runner), not a slower model (docs/experiments.md).
A baseline made by scripts/baseline.sh also records each model's machine noise: how far its
accuracy and ECE moved when the same preset ran again with another floating-point path (one
thread; no AVX-512). Trained models are not bit-identical across machines, so for such a baseline
the accuracy and ECE limits are at least `gate.machine_noise_factor` x that noise (`noise` writes it).
Results from different test episodes cannot be paired: each such model fails with "test episodes
changed" (a change to the data, sampler or episode parameters needs a deliberate baseline update).
A model of the baseline missing from the current results is a regression; a new model is listed
without a verdict.
`--exact` demands bit-identical metrics, per-episode results and episode hashes instead (the
reproducibility check: two clean runs of the same pipeline).
The markdown table goes to stdout and, with --out, to a file.

`promote` runs `compare` and, only when every model passes, registers each model in the MLflow
Model Registry as `<prefix><model>` (the MLflow model its train@ run logged, tagged with its
accuracy, CI, calibrated ECE and temperature) and moves `--alias` to it; then
`fewshot-predict --model models:/fewshot-protonet@champion` predicts with it, calibrated. A model
already registered keeps its version (fewshot.core.model_registry).

`power` answers "would the gate see a drop of this size?" from the per-episode variance of a
baseline (default: the workspace's results): per model, the smallest drop it detects with 80%
power and its power for `--drop`, under the conservative assumption that the two runs' episode
results are uncorrelated (a small change to one model keeps them correlated, so the real power
is higher).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fewshot.core import params as params_lib
from fewshot.core.errors import one_line_errors
from fewshot.core.fileio import atomic_path
from fewshot.evaluation import metrics, snapshots
from fewshot.evaluation.gate_table import table
from fewshot.evaluation.power import power_table
from fewshot.evaluation.snapshots import DETERMINISTIC, load_baseline, workspace_snapshot


def compare(baseline: dict, current: dict, gate: params_lib.Gate, exact: bool = False) -> list[dict]:
    """One row per model: the numbers and a list of problems (empty = passes)."""
    rows = []
    for name in sorted(set(baseline["models"]) | set(current["models"])):
        base, cur = baseline["models"].get(name), current["models"].get(name)
        row = {"model": name, "base": base, "cur": cur, "paired": None, "problems": []}
        rows.append(row)
        if base is None:
            row["problems"] = [] if not exact else ["not in the baseline"]
            row["new"] = True
            continue
        if cur is None:
            row["problems"].append("missing from the current results")
            continue
        if exact:
            row["problems"] += [f"{key} {base.get(key)} -> {cur.get(key)}" for key in
                                DETERMINISTIC if base.get(key) != cur.get(key)]
            if base.get("per_episode") != cur.get("per_episode"):
                row["problems"].append(_episodes_differ(base.get("per_episode") or [],
                                                        cur.get("per_episode") or []))
            continue
        unpaired = _not_comparable(base, cur)
        if unpaired:
            row["problems"].append(unpaired)
            continue
        paired = row["paired"] = metrics.paired_difference(base["per_episode"], cur["per_episode"],
                                                   gate.confidence)
        acc_limit, ece_limit = (_limit(gate.accuracy_drop, base, "accuracy", gate),
                                _limit(gate.ece_increase, base, "ece_calibrated", gate))
        if -paired.mean > acc_limit[0] and paired.high < 0:
            row["problems"].append(f"accuracy dropped {-paired.mean:.4f} (> {acc_limit[1]})")
        rise = cur["ece_calibrated"] - base["ece_calibrated"]
        if rise > ece_limit[0]:
            row["problems"].append(f"ECE rose {rise:.4f} (> {ece_limit[1]})")
        slower = _slower(base, cur, gate)
        if slower:
            row["problems"].append(slower)
    if exact:
        base_eps, cur_eps = baseline.get("episodes") or {}, current.get("episodes") or {}
        for split in sorted(set(base_eps) & set(cur_eps)):
            if base_eps[split] != cur_eps[split]:
                rows.append({"model": f"({split} episodes)", "base": None, "cur": None,
                             "paired": None, "problems": [f"hash {base_eps[split][:12]} -> "
                                                          f"{cur_eps[split][:12]}"]})
    return rows


def _limit(tolerance: float, base: dict, key: str, gate: params_lib.Gate) -> tuple[float, str]:
    """The limit for metric `key` of a model and how to state it: the tolerance, or
    `gate.machine_noise_factor` x the machine noise the baseline recorded for it when larger.

    >>> rule = params_lib.Gate(0.01, 0.95, 0.02, latency_ratio=2.0, latency_min_ms=5.0,
    ...                        machine_noise_factor=2.0)
    >>> _limit(0.01, {"machine_noise": {"accuracy": 0.03}}, "accuracy", rule)
    (0.06, '2.0 x machine noise 0.0300')
    >>> _limit(0.01, {}, "accuracy", rule)
    (0.01, '0.01')
    """
    noise = (base.get("machine_noise") or {}).get(key) or 0.0
    if gate.machine_noise_factor * noise <= tolerance:
        return tolerance, f"{tolerance}"
    return gate.machine_noise_factor * noise, f"{gate.machine_noise_factor} x machine noise {noise:.4f}"


def _slower(base: dict, cur: dict, gate: params_lib.Gate) -> str | None:
    """Why the current query latency is a regression, or None.

    >>> rule = params_lib.Gate(0.01, 0.95, 0.02, latency_ratio=2.0, latency_min_ms=5.0,
    ...                         machine_noise_factor=2.0)
    >>> run = {"device": "cpu", "query_p50_ms": 10.0, "query_cpu_p50_ms": 9.0}
    >>> _slower(run, run | {"query_p50_ms": 40.0, "query_cpu_p50_ms": 36.0}, rule)
    'query p50 40.0 ms > 2.0 x 10.0 ms (CPU 36.0 ms vs 9.0 ms)'
    >>> _slower(run, run | {"query_p50_ms": 40.0, "query_cpu_p50_ms": 9.5}, rule) is None  # waited
    True
    """
    b_ms, c_ms = base.get("query_p50_ms"), cur.get("query_p50_ms")
    if not (base.get("device") == cur.get("device") and b_ms and c_ms
            and c_ms > b_ms * gate.latency_ratio and c_ms - b_ms > gate.latency_min_ms):
        return None
    b_cpu, c_cpu = base.get("query_cpu_p50_ms"), cur.get("query_cpu_p50_ms")
    if b_cpu is None or c_cpu is None:  # a baseline from before CPU times were recorded
        return f"query p50 {c_ms:.1f} ms > {gate.latency_ratio} x {b_ms:.1f} ms"
    if c_cpu <= b_cpu * gate.latency_ratio:
        return None
    return (f"query p50 {c_ms:.1f} ms > {gate.latency_ratio} x {b_ms:.1f} ms "
            f"(CPU {c_cpu:.1f} ms vs {b_cpu:.1f} ms)")


def _episodes_differ(base: list, cur: list) -> str:
    """How per-episode results differ, in one short phrase (not the two lists of 1,000 numbers).

    >>> _episodes_differ([0.2, 0.4, 0.6], [0.2, 0.5, 0.6])
    'per_episode: 1 of 3 episodes differ (first: episode 1, 0.4 -> 0.5)'
    """
    if len(base) != len(cur):
        return f"per_episode: {len(base)} -> {len(cur)} episodes"
    changed = [i for i, (b, c) in enumerate(zip(base, cur, strict=True)) if b != c]
    first = changed[0]
    return (f"per_episode: {len(changed)} of {len(base)} episodes differ (first: episode {first}, "
            f"{base[first]} -> {cur[first]})")


def _not_comparable(base: dict, cur: dict) -> str | None:
    """Why two results of one model cannot be paired, or None: they must come from the same test
    episodes. A change that alters the episodes (data, sampler, seed, n_way, n_shot, n_query) is a
    failure of the gate until the baseline is updated on purpose.

    >>> _not_comparable({"episodes_hash": "ab" * 32, "per_episode": [1.0]},
    ...                 {"episodes_hash": "cd" * 32, "per_episode": [1.0]})
    'test episodes changed (ababababab -> cdcdcdcdcd): not comparable; update the baseline if intended'
    """
    if base.get("episodes_hash") != cur.get("episodes_hash"):
        return (f"test episodes changed ({str(base.get('episodes_hash'))[:10]} -> "
                f"{str(cur.get('episodes_hash'))[:10]}): not comparable; update the baseline if intended")
    if len(base["per_episode"]) != len(cur["per_episode"]):
        return (f"{len(base['per_episode'])} -> {len(cur['per_episode'])} per-episode results: not "
                "comparable; update the baseline if intended")
    return None


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@one_line_errors
def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m fewshot.gate", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("compare", help="compare reports/ with a baseline; exit 1 on regression")
    run.add_argument("baseline", help="snapshot file or git revision")
    run.add_argument("--exact", action="store_true",
                     help="require identical metrics and episodes (reproducibility check)")
    run.add_argument("--out", type=Path, help="also write the markdown table here")
    save = commands.add_parser("snapshot", help="write the current results as a baseline file")
    save.add_argument("file", type=Path)
    strength = commands.add_parser("power", help="the smallest accuracy drop the gate detects, per model")
    strength.add_argument("baseline", nargs="?", help="snapshot file or git revision (default: workspace)")
    strength.add_argument("--drop", type=float, default=0.02,
                          help="drop to state the power for (default 0.02)")
    promote = commands.add_parser("promote", help="compare, then register the models in the MLflow "
                                  "Model Registry and move an alias to them (only if all pass)")
    promote.add_argument("baseline", help="snapshot file or git revision")
    promote.add_argument("--alias", default="champion", help="alias to move (default champion)")
    promote.add_argument("--prefix", default="fewshot-",
                         help="registered model name = PREFIX + model (default fewshot-)")
    noisy = commands.add_parser("noise", help="record machine noise in a baseline file, from reruns "
                                "of the same preset with another floating-point path")
    noisy.add_argument("baseline", help="snapshot file of the baseline run (rewritten with the noise)")
    noisy.add_argument("runs", nargs="+", metavar="LABEL=FILE",
                       help="snapshot file of a rerun, labelled by what differed, e.g. 1-thread=r1.json "
                            "(LABEL has no '=')")
    args = parser.parse_args()
    if args.command == "noise":
        print("\n".join(snapshots.record_machine_noise(args.baseline, args.runs)))
        return
    if args.command == "power":
        snap = load_baseline(args.baseline) if args.baseline else workspace_snapshot()
        print(power_table(snap, args.drop, params_lib.load().gate))
        return
    current = workspace_snapshot()
    if args.command == "snapshot":
        _write(args.file, json.dumps(current, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.file}: {len(current['models'])} models")
        return
    gate = params_lib.load().gate
    rows = compare(load_baseline(args.baseline), current, gate, getattr(args, "exact", False))
    text = table(rows, gate.confidence)
    failed = [row["model"] for row in rows if row["problems"]]
    text += ("\n\n" + (f"FAILED: {len(failed)} regression(s): {', '.join(failed)}" if failed else
                       f"passed: {len(rows)} model(s) against {args.baseline}") + "\n")
    print(text)
    if getattr(args, "out", None):
        _write(args.out, text)
    if args.command == "promote" and not failed:
        from fewshot.evaluation.promote import promote

        promote(current, args.baseline, args.alias, args.prefix)
    elif args.command == "promote":
        print(f"not promoted: the gate failed; '{args.alias}' stays where it was", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
