"""What a stage costs when it does almost no work, and what DVC adds to it: with and without the
installed packages' bytecode, with and without YAML's C loader.

Usage (in a project after `dvc repro`, e.g. a fresh clone):
    python benchmarks/dvc_overhead.py [--project DIR] [--repeats 3] [--out FILE.json]

Three cheap stages (`check`, `episodes@images`, `episodes@light_curves`: read params and items,
sample episodes, write small files, log an MLflow run) are timed five ways, interleaved so that
the machine's load hits all alike, `--repeats` times each:
- direct: `python -m fewshot.stages...` one after the other (what the stages themselves cost);
- direct, no bytecode: the same with PYTHONPYCACHEPREFIX pointing at an empty folder, so that no
  .pyc is found and every module is compiled from source, as in an environment installed without
  bytecode (uv's default) where PYTHONDONTWRITEBYTECODE is set;
- through DVC: `dvc repro --force --single-item` of the same three stages, as installed (bytecode,
  ruamel.yaml's C extension `ruamel.yaml.clib`); once with the C extension hidden (a `_ruamel_yaml`
  that fails to import, first on PYTHONPATH: ruamel's pure-Python parser); once without bytecode.
DVC's share per stage is (through DVC - direct) / 3: its own start-up, reading dvc.yaml and
dvc.lock, hashing the stage's dependencies, caching its outputs and rewriting dvc.lock. Every run
rewrites the same files with the same content (same seed) and logs real MLflow runs to the
project's store. Prints medians and mins; writes `--out`.
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
STAGES = ["check", "episodes@images", "episodes@light_curves"]


def timed(cmds: list[list[str]], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    for cmd in cmds:
        subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def direct_commands() -> list[list[str]]:
    out = []
    for stage in STAGES:
        name, _, key = stage.partition("@")
        out.append([sys.executable, "-m", f"fewshot.stages.{name}", *([key] if key else [])])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="a project after dvc repro")
    parser.add_argument("--repeats", type=int, default=3, help="timings of each way")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/dvc_overhead.json")
    args = parser.parse_args()
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    dvc = [[str(Path(bin_dir) / "dvc"), "repro", "--force", "--single-item", *STAGES]]
    with tempfile.TemporaryDirectory() as shim, tempfile.TemporaryDirectory() as no_pyc:
        (Path(shim) / "_ruamel_yaml.py").write_text("raise ImportError('hidden by the benchmark')\n")
        hidden = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [shim, env.get("PYTHONPATH")]))}
        source_only = {**env, "PYTHONPYCACHEPREFIX": no_pyc, "PYTHONDONTWRITEBYTECODE": "1"}
        ways = {"direct": (direct_commands(), env),
                "direct, no bytecode": (direct_commands(), source_only),
                "dvc repro": (dvc, env),
                "dvc repro, pure-Python YAML": (dvc, hidden),
                "dvc repro, no bytecode": (dvc, source_only)}
        times: dict[str, list[float]] = {way: [] for way in ways}
        for _ in tqdm(range(args.repeats), desc="rounds of 5 ways"):
            for way, (cmds, way_env) in ways.items():
                times[way].append(timed(cmds, args.project, way_env))
    rows = {k: {"median_s": statistics.median(v), "min_s": min(v), "runs_s": v} for k, v in times.items()}
    n = len(STAGES)
    per_stage = {k: v["median_s"] / n for k, v in rows.items()}
    dvc_share = {"as installed": per_stage["dvc repro"] - per_stage["direct"],
                 "pure-Python YAML": per_stage["dvc repro, pure-Python YAML"] - per_stage["direct"],
                 "no bytecode": per_stage["dvc repro, no bytecode"] - per_stage["direct, no bytecode"]}
    for name, row in rows.items():
        print(f"{name:30s} median {row['median_s']:6.2f} s ({per_stage[name]:5.2f} s/stage)  "
              f"min {row['min_s']:6.2f} s")
    for name, extra in dvc_share.items():
        print(f"DVC's share per stage, {name:18s} {extra:5.2f} s")
    ratios = {"direct: no bytecode / bytecode": per_stage["direct, no bytecode"] / per_stage["direct"],
              "dvc repro: no bytecode / bytecode":
                  per_stage["dvc repro, no bytecode"] / per_stage["dvc repro"],
              "dvc repro: pure-Python YAML / C loader":
                  per_stage["dvc repro, pure-Python YAML"] / per_stage["dvc repro"]}
    for name, ratio in ratios.items():
        print(f"{name:40s} {ratio:.2f}x")
    from stage_startup import cpu_model  # benchmarks/, on sys.path when run as a script

    from fewshot.core.fileio import write_json

    write_json(args.out, {"machine": cpu_model(), "cpus": os.cpu_count(), "stages": STAGES, "rows": rows,
                          "seconds_per_stage": per_stage, "dvc_share_per_stage_s": dvc_share,
                          "ratios": ratios})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
