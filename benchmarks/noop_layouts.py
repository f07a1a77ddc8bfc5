"""No-op `dvc repro` of the same pipeline at two revisions, side by side: e.g. raw files as folders
(before d6e3dcd) against one archive per domain.

Usage (in a project after `dvc repro`): python benchmarks/noop_layouts.py [--before 1ebc8f4]
                                        [--repeats 7] [--out FILE.json]

The `--before` revision is checked out as a git worktree in a temp folder and its outputs restored
from this project's DVC cache (`dvc checkout`: nothing is rerun; the revision's outputs must be in
the cache, i.e. it was reproduced here). Both must then be up to date (`dvc status`), or the
benchmark stops. `dvc repro` is timed in each, alternately, `--repeats` times after one warm-up
(DVC's first run of a checkout fills its file-state database). Prints medians and the ratio;
writes `--out`.
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

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"error: {' '.join(cmd)} failed in {cwd}: {done.stderr.strip()[-500:]}")
    return done.stdout


def timed_noop(cwd: Path, env: dict, dvc: str) -> float:
    started = time.perf_counter()
    run([dvc, "repro", "-q"], cwd, env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="1ebc8f4", help="the revision to compare HEAD with")
    parser.add_argument("--repeats", type=int, default=7, help="timed no-ops of each")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/noop_layouts.json")
    args = parser.parse_args()
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    dvc = str(Path(bin_dir) / "dvc")
    cache = run([dvc, "cache", "dir"], ROOT, env).strip()
    with tempfile.TemporaryDirectory(prefix="noop-before-") as folder:
        before = Path(folder) / "repo"
        run(["git", "worktree", "add", "--detach", str(before), args.before], ROOT, env)
        try:
            run([dvc, "cache", "dir", "--local", cache], before, env)
            print(f"restoring the outputs of {args.before} from {cache} ...")
            run([dvc, "checkout", "--quiet"], before, env)
            projects = {args.before: before, "HEAD": ROOT}
            for name, where in projects.items():
                status = run([dvc, "status", "-q"], where, env)  # exit code 0 and no output: clean
                if status.strip():
                    sys.exit(f"error: {name} is not up to date in {where}:\n{status[:500]}")
                timed_noop(where, env, dvc)  # warm-up: DVC's state database of this checkout
            times: dict[str, list[float]] = {name: [] for name in projects}
            for _ in tqdm(range(args.repeats), desc="alternate no-ops"):
                for name, where in projects.items():
                    times[name].append(timed_noop(where, env, dvc))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, env=env)
    rows = {k: {"median_s": statistics.median(v), "min_s": min(v), "runs_s": v} for k, v in times.items()}
    for name, row in rows.items():
        print(f"no-op dvc repro at {name:10s} median {row['median_s']:.2f} s  min {row['min_s']:.2f} s")
    ratio = rows[args.before]["median_s"] / rows["HEAD"]["median_s"]
    print(f"{args.before} / HEAD: {ratio:.2f}x (medians, same run)")
    from stage_startup import cpu_model  # benchmarks/, on sys.path when run as a script

    from fewshot.core.fileio import write_json

    head = run(["git", "rev-parse", "--short", "HEAD"], ROOT, env).strip()
    write_json(args.out, {"machine": cpu_model(), "cpus": os.cpu_count(), "before": args.before,
                          "head": head, "rows": rows, "ratio_before_over_head": ratio})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
