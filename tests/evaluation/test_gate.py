"""The regression gate: paired per-episode statistics, tolerances, refusals, the command itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fewshot.evaluation import gate, gate_table, metrics
from tests.conftest import ROOT, plant_drop, repo_params

GATE = repo_params().gate  # the repository's tolerances

QUERIES = 3  # per episode, as in the smoke preset (3-way, 1 query)


def results(n_episodes: int = 200, seed: int = 0) -> list[float]:
    """Per-episode accuracy of a ~85% model: k/3 correct per episode."""
    rng = np.random.default_rng(seed)
    return list(rng.binomial(QUERIES, 0.85, n_episodes) / QUERIES)


def model_entry(per_episode, ece=0.02, p50=5.0, device="cpu", episodes_hash="abc") -> dict:
    return {"accuracy": float(np.mean(per_episode)), "ece_calibrated": ece, "query_p50_ms": p50,
            "device": device, "episodes_hash": episodes_hash, "per_episode": list(per_episode)}


def snap(**models) -> dict:
    return {"episodes": {"test": "abc"}, "models": models}


def verdicts(rows) -> dict:
    return {row["model"]: row["problems"] for row in rows}


def test_paired_interval_matches_scipy_paired_t_test():
    base, cur = results(seed=1), results(seed=2)
    paired = metrics.paired_difference(base, cur, 0.95)
    expected = stats.ttest_rel(cur, base).confidence_interval(0.95)
    assert paired.n == 200
    assert paired.low == pytest.approx(expected.low) and paired.high == pytest.approx(expected.high)


def test_planted_three_point_drop_fails_and_an_identical_rerun_passes():
    base = results()
    planted = plant_drop(base, 0.03, QUERIES)
    rows = gate.compare(snap(m=model_entry(base)), snap(m=model_entry(planted)), GATE)
    assert len(verdicts(rows)["m"]) == 1 and "accuracy dropped 0.0300" in verdicts(rows)["m"][0]
    assert rows[0]["paired"].high < 0
    assert verdicts(gate.compare(snap(m=model_entry(base)), snap(m=model_entry(base)), GATE)) == {
        "m": []}


def test_drop_within_tolerance_or_not_significant_passes():
    base = results()
    small = plant_drop(base, 0.005, QUERIES)  # significant at zero noise, but under accuracy_drop=0.01
    assert verdicts(gate.compare(snap(m=model_entry(base)), snap(m=model_entry(small)), GATE))["m"] == []
    few, other = results(6, seed=3), results(6, seed=4)  # 6 noisy episodes: CI spans zero
    rows = gate.compare(snap(m=model_entry(few)), snap(m=model_entry(other)), GATE)
    assert rows[0]["paired"].low < 0 < rows[0]["paired"].high and rows[0]["problems"] == []


def test_ece_and_latency_tolerances_and_latency_only_on_the_same_device():
    base = results()
    worse = model_entry(base, ece=0.05, p50=12.0)
    problems = verdicts(gate.compare(snap(m=model_entry(base)), snap(m=worse), GATE))["m"]
    assert [p.split()[0] for p in problems] == ["ECE", "query"]
    elsewhere = model_entry(base, p50=50.0, device="cuda (H100)")
    assert verdicts(gate.compare(snap(m=model_entry(base)), snap(m=elsewhere), GATE))["m"] == []
    slower_but_small = model_entry(base, p50=9.0)  # 1.8x: under latency_ratio 2.0
    assert verdicts(gate.compare(snap(m=model_entry(base)), snap(m=slower_but_small), GATE))["m"] == []


def test_latency_grown_in_wall_time_only_is_a_busy_machine_and_in_cpu_time_too_a_regression():
    """Seen on a loaded 2-core machine: query p50 8.5 -> 700 ms for unchanged code. Wall time that
    grows while the query's CPU time does not passes; a slowdown in both fails."""
    base = results()
    before = model_entry(base, p50=8.5) | {"query_cpu_p50_ms": 8.0}
    busy = model_entry(base, p50=700.0) | {"query_cpu_p50_ms": 9.0}
    slower = model_entry(base, p50=40.0) | {"query_cpu_p50_ms": 36.0}
    assert verdicts(gate.compare(snap(m=before), snap(m=busy), GATE))["m"] == []
    problems = verdicts(gate.compare(snap(m=before), snap(m=slower), GATE))["m"]
    assert problems == ["query p50 40.0 ms > 2.0 x 8.5 ms (CPU 36.0 ms vs 8.0 ms)"]


def test_missing_model_fails_and_new_model_is_listed():
    base = results()
    rows = gate.compare(snap(a=model_entry(base)), snap(b=model_entry(base)), GATE)
    assert verdicts(rows) == {"a": ["missing from the current results"], "b": []}
    assert "new (no baseline)" in gate_table.table(rows, 0.95)


def test_results_on_different_episodes_fail_by_name_instead_of_being_paired():
    base = results()
    rows = gate.compare(snap(m=model_entry(base), n=model_entry(base)),
                        snap(m=model_entry(base, episodes_hash="def"), n=model_entry(base)), GATE)
    assert verdicts(rows) == {"m": ["test episodes changed (abc -> def): not comparable; update the "
                                    "baseline if intended"], "n": []}
    assert rows[0]["paired"] is None
    assert "**REGRESSION**: test episodes changed" in gate_table.table(rows, 0.95)
    rows = gate.compare(snap(m=model_entry(base)), snap(m=model_entry(base[:-1])), GATE)
    assert verdicts(rows)["m"][0].startswith("200 -> 199 per-episode results")


def test_a_drop_within_the_baselines_machine_noise_passes_and_one_beyond_it_fails():
    """Trained models move across machines (another float path): a baseline made with
    scripts/baseline.sh records how far; the limits are machine_noise_factor x that move."""
    base = results(1000)
    noisy = model_entry(base) | {"machine_noise": {"accuracy": 0.03, "ece_calibrated": 0.02}}
    within = model_entry(plant_drop(base, 0.05, QUERIES), ece=0.05)  # 0.05 < 2 x 0.03; ECE +0.03 < 0.04
    rows = gate.compare(snap(m=noisy), snap(m=within), GATE)
    assert rows[0]["paired"].high < 0 and verdicts(rows) == {"m": []}
    assert "±0.0300, ±0.0200" in gate_table.table(rows, 0.95)
    plain = verdicts(gate.compare(snap(m=model_entry(base)), snap(m=within), GATE))["m"]
    assert [p.split()[0] for p in plain] == ["accuracy", "ECE"]  # the same change, no noise recorded
    beyond = gate.compare(snap(m=noisy), snap(m=model_entry(plant_drop(base, 0.08, QUERIES))), GATE)
    assert verdicts(beyond)["m"] == ["accuracy dropped 0.0800 (> 2.0 x machine noise 0.0300)"]


def test_exact_mode_sees_one_changed_episode():
    base = results()
    changed = list(base)
    changed[7] = 1.0 - changed[7] if changed[7] != 0.5 else 0.0
    rows = gate.compare(snap(m=model_entry(base)), snap(m=model_entry(changed)), GATE, exact=True)
    assert any(p.startswith("per_episode") for p in verdicts(rows)["m"])
    assert verdicts(gate.compare(snap(m=model_entry(base)), snap(m=model_entry(base)), GATE,
                                 exact=True)) == {"m": []}


def write_reports(root: Path, name: str, per_episode: list[float]) -> None:
    (root / "reports/metrics").mkdir(parents=True, exist_ok=True)
    (root / f"reports/plots/{name}").mkdir(parents=True, exist_ok=True)
    metrics = {"accuracy": float(np.mean(per_episode)), "ece_calibrated": 0.02, "ece": 0.05,
               "episodes_hash": "h" * 64, "device": "cpu", "latency": {"query_p50_ms": 4.0}}
    (root / f"reports/metrics/{name}.json").write_text(json.dumps(metrics))
    pd.DataFrame({"episode_id": range(len(per_episode)), "accuracy": per_episode}).to_csv(
        root / f"reports/plots/{name}/episodes.csv", index=False)


def run_gate(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fewshot.gate", *args], cwd=cwd,
                          capture_output=True, text=True, env=dict(os.environ))


def test_command_against_a_git_revision_and_a_snapshot_file(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "T")
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    base = results()
    write_reports(tmp_path, "protonet", base)
    git("add", "-A")
    git("commit", "-qm", "baseline")
    assert run_gate(tmp_path, "snapshot", "base.json").returncode == 0

    unchanged = run_gate(tmp_path, "compare", "HEAD", "--out", "gate.md")
    assert unchanged.returncode == 0, unchanged.stderr
    assert "| protonet |" in unchanged.stdout and "passed: 1 model(s) against HEAD" in unchanged.stdout
    assert (tmp_path / "gate.md").read_text().strip() == unchanged.stdout.strip()

    write_reports(tmp_path, "protonet", plant_drop(base, 0.03, QUERIES))
    for baseline in ("HEAD", "base.json"):
        failed = run_gate(tmp_path, "compare", baseline)
        assert failed.returncode == 1, failed.stderr
        assert "**REGRESSION**: accuracy dropped 0.0300" in failed.stdout
        assert "FAILED: 1 regression(s): protonet" in failed.stdout

    for bad, message in (("nope", "baseline 'nope' is neither a snapshot file nor a git revision"),
                         ("params.yaml", "baseline file 'params.yaml' is not JSON")):
        refused = run_gate(tmp_path, "compare", bad)
        assert refused.returncode == 2 and refused.stderr.startswith(f"error: {message}")
        assert len(refused.stderr.strip().splitlines()) == 1


def test_noise_command_records_the_largest_move_of_each_model_and_refuses_other_episodes(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    base = results()
    write_reports(tmp_path, "protonet", base)
    assert run_gate(tmp_path, "snapshot", "base.json").returncode == 0
    for name, drop in (("r1.json", 0.01), ("no-avx512=run.json", 0.04)):  # a file name with "="
        write_reports(tmp_path, "protonet", plant_drop(base, drop, QUERIES))
        assert run_gate(tmp_path, "snapshot", name).returncode == 0
    done = run_gate(tmp_path, "noise", "base.json", "1-thread=r1.json", "no-avx512=no-avx512=run.json")
    assert done.returncode == 0, done.stderr
    noise = json.loads((tmp_path / "base.json").read_text())["models"]["protonet"]["machine_noise"]
    assert noise["accuracy"] == pytest.approx(0.04) and sorted(noise["runs"]) == ["1-thread", "no-avx512"]
    assert "run 'no-avx512': 1 of 1 models moved" in done.stdout
    strength = run_gate(tmp_path, "power", "base.json").stdout
    row = next(line for line in strength.splitlines() if line.startswith("| protonet |")).split("|")
    assert row[4].strip() == "±0.0400" and float(row[5]) > 2.0 * 0.04  # the noise limit, then 80% power
    write_reports(tmp_path, "protonet", plant_drop(base, 0.07, QUERIES))
    within = run_gate(tmp_path, "compare", "base.json")  # 0.07 < 2.0 x 0.04
    assert within.returncode == 0 and "| ±0.0400, ±0.0000 | ok |" in within.stdout

    other = json.loads((tmp_path / "r1.json").read_text())
    other["models"]["protonet"]["episodes_hash"] = "x" * 64
    (tmp_path / "other.json").write_text(json.dumps(other))
    other["models"]["protonet"]["episodes_hash"] = "h" * 64
    other["models"]["protonet"]["ece_calibrated"] = None
    (tmp_path / "no-ece.json").write_text(json.dumps(other))
    for args, message in ((["base.json", "x=other.json"], "machine-noise run 'x' evaluated model 'protonet' "
                                                          "on other test episodes"),
                          (["base.json", "x=no-ece.json"], "machine-noise run 'x' has no per-episode "
                                                           "results or calibrated ECE for model 'protonet'"),
                          (["base.json", "r1.json"], "machine-noise run 'r1.json' is not LABEL=FILE"),
                          (["base.json", "a=r1.json", "a=r1.json"], "machine-noise run 'a=r1.json' is not"),
                          (["HEAD", "a=r1.json"], "baseline 'HEAD' is not a snapshot file")):
        refused = run_gate(tmp_path, "noise", *args)
        assert refused.returncode == 2 and refused.stderr.startswith(f"error: {message}"), refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
