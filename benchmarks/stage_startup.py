"""A stage's fixed cost: the wall time of a stage that does (almost) no work, before and after.

Usage (in a project after `dvc repro`, e.g. a fresh clone):
    python benchmarks/stage_startup.py [--baseline-rev REV] [--repeats 5] [--out FILE.json]

Runs `python -m fewshot.stages.episodes DOMAIN` (0.3 s of work: read items, sample episodes,
write two small files, log one MLflow run) alternately with this checkout's `src/` (with the
tracking daemon the stage before left, and cold: starting its own) and with the `src/` of
`--baseline-rev` (extracted with `git archive`), `--repeats` times each, and the bare
imports beside them (`python -c "import ..."`: the floor a stage cannot go below). Interleaved so
that the machine's load hits both alike; prints median and min per variant and their ratio.
Every run logs a real run to the project's MLflow store and rewrites the episode files (same
content: same seed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], src: Path, cwd: Path, extra: dict | None = None) -> float:
    env = {**os.environ, "PYTHONPATH": str(src), **(extra or {})}
    started = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="ed2cc9c", help="git revision of the 'before' src/")
    parser.add_argument("--domain", default="light_curves")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="a project after dvc repro")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/stage_startup.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", args.baseline_rev, "src"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "x", "-C", tmp], input=archive, check=True)
        # "after, cold": no tracking daemon to reuse (each stage starts its own, as the first stage
        # of a pipeline run does: FEWSHOT_TRACKING_IDLE_S=0, and an MLFLOW_ variable set to its
        # default so that the address differs from the warm one's); "after": the daemon the run
        # before left.
        cold = {"FEWSHOT_TRACKING_IDLE_S": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
        sources = {"before": (Path(tmp) / "src", {}), "after, cold": (ROOT / "src", cold),
                   "after": (ROOT / "src", {})}
        stage = [sys.executable, "-m", "fewshot.stages.episodes", args.domain]
        imports = [sys.executable, "-c", "import fewshot.stages.episodes"]
        times: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            for label, (src, extra) in sources.items():
                times.setdefault(f"stage, {label}", []).append(timed(stage, src, args.project, extra))
                if not extra:
                    times.setdefault(f"imports only, {label}", []).append(
                        timed(imports, src, args.project))
    rows = {k: {"median_s": statistics.median(v), "min_s": min(v), "runs_s": v} for k, v in times.items()}
    ratio = rows["stage, before"]["median_s"] / rows["stage, after"]["median_s"]
    for name, row in rows.items():
        print(f"{name:26s} median {row['median_s']:6.2f} s  min {row['min_s']:6.2f} s")
    print(f"stage before / after (median): {ratio:.2f}x")
    from fewshot.core.fileio import write_json

    write_json(args.out, {"machine": cpu_model(), "cpus": os.cpu_count(),
                          "baseline_rev": args.baseline_rev, "stage": " ".join(stage[1:]),
                          "rows": rows, "before_over_after": ratio})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
