"""The CI scripts' own checks: the reproducibility step of scripts/ci_smoke.sh compares two
different clean runs, so it fails when they differ (it once compared a run with itself)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.evaluation.test_gate import results, run_gate, write_reports


def reproducible(cwd: Path, snapshot: str) -> subprocess.CompletedProcess:
    """The script's step, as the script runs it: the workspace against the other run's snapshot."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(["bash", "-c", f"source {ROOT}/scripts/ci_smoke.sh && reproducible {snapshot}"],
                          cwd=cwd, capture_output=True, text=True, env=env)


def test_reproducibility_step_fails_when_the_second_clean_run_differs_from_the_first(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path)
    first = results()
    write_reports(tmp_path, "protonet", first)
    assert run_gate(tmp_path, "snapshot", "run1.json").returncode == 0
    same = reproducible(tmp_path, "run1.json")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "passed: 1 model(s) against run1.json" in same.stdout
    assert (tmp_path / "reproducibility.md").is_file()

    second = list(first)
    second[7] = 1.0 if second[7] != 1.0 else 0.0
    write_reports(tmp_path, "protonet", second)
    differs = reproducible(tmp_path, "run1.json")
    assert differs.returncode == 1
    assert "per_episode: 1 of 200 episodes differ (first: episode 7" in differs.stdout
    assert "FAILED: 1 regression(s): protonet" in differs.stdout


def test_ci_gate_runs_the_committed_head_in_a_clone_that_shares_the_dvc_cache(tmp_path):
    """scripts/ci_gate.sh's clone: HEAD's committed files (not the edits), the checkout's cache."""
    repo, clone = tmp_path / "repo", tmp_path / "clone"
    shutil.copytree(ROOT / ".dvc", repo / ".dvc",
                    ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    (repo / "params.yaml").write_text("seed: 0\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    (repo / "params.yaml").write_text("seed: 1\n")  # an uncommitted edit: not what the gate tests
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    script = f"source {ROOT}/scripts/ci_gate.sh && throwaway_clone {repo} {clone}"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert (clone / "params.yaml").read_text() == "seed: 0\n"
    cache = subprocess.run(["dvc", "cache", "dir"], cwd=clone, capture_output=True, text=True, env=env)
    assert Path(cache.stdout.strip()) == repo / ".dvc" / "cache"
    assert (clone / "data" / "downloads").resolve() == repo / "data" / "downloads"


def test_ci_gate_names_a_bad_argument_in_one_line():
    done = subprocess.run(["bash", str(ROOT / "scripts" / "ci_gate.sh"), "--update"], capture_output=True,
                          text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: unknown argument '--update'; expected nothing or --update-baseline"


def test_baseline_script_names_a_missing_preset_in_one_line():
    done = subprocess.run(["bash", str(ROOT / "scripts" / "baseline.sh"), "nope"], capture_output=True,
                          text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: preset 'nope' is not a preset of pipelines/ (pipelines/NAME.yaml, "
                                   "not a sweep); expected one argument, e.g. ci or smoke")
