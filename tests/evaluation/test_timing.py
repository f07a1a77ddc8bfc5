"""Latency that means the same on a busy machine: the fastest of repeated one-thread runs, CPU
time beside wall time, and the gate's rule that a slowdown must show in CPU time too."""

from __future__ import annotations

import statistics

import pytest
import torch

from fewshot.evaluation.gate import _slower
from fewshot.evaluation.timing import cpu_hog, fastest
from tests.conftest import repo_params

GATE = repo_params().gate


def _query_p50(work: torch.Tensor, times: int) -> dict:
    """A stand-in query of fixed work (about 20 ms on one core), done `times` times; p50 of 12."""
    def query():
        for _ in range(10 * times):
            work @ work

    timed = [fastest(query, repeats=3) for _ in range(12)]
    return {"device": "cpu", "query_p50_ms": statistics.median(w for w, _ in timed),
            "query_cpu_p50_ms": statistics.median(c for _, c in timed)}


@pytest.mark.slow
def test_gate_stays_green_beside_a_cpu_hog_and_still_sees_three_times_the_work():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as evaluate times queries
    try:
        work = torch.randn(384, 384)
        idle = _query_p50(work, times=1)
        with cpu_hog():
            busy, slower = _query_p50(work, times=1), _query_p50(work, times=3)
    finally:
        torch.set_num_threads(threads)
    assert _slower(idle, busy, GATE) is None, (idle, busy)
    assert _slower(idle, slower, GATE) is not None, (idle, slower)
    assert slower["query_cpu_p50_ms"] > 2.5 * idle["query_cpu_p50_ms"]


def test_fastest_keeps_the_quickest_run_and_its_cpu_time():
    calls = []

    def call():
        calls.append(1)
        sum(range(200_000 if len(calls) == 1 else 20_000))  # the first run is the slow one

    wall, cpu = fastest(call, repeats=4)
    assert len(calls) == 4
    slow_wall, _ = fastest(lambda: sum(range(200_000)), repeats=1)
    assert 0 < wall < slow_wall and 0 <= cpu <= wall * 1.5 + 0.5
