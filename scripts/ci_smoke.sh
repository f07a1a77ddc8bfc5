#!/usr/bin/env bash
# CI after the tests: the smoke preset through real `dvc repro`, twice from clean, then the gate.
#  1. `python -m fewshot.tools.experiments run smoke`: a `dvc exp run` of every stage on data/shapes
#     and data/series
#  2. reproducibility: two clean runs must give bit-identical metrics, per-episode results and
#     episode hashes. .ci/run passes FEWSHOT_SMOKE_SNAPSHOT, the results of the end-to-end test's
#     clean smoke run in a temporary repository (same data, params and code), as the other run;
#     without it this script wipes every output and the DVC cache, runs `dvc repro --force` itself
#     and compares that second run with a snapshot of the first
#  3. the regression gate against the committed baseline pipelines/baselines/smoke.json
#  4. `dvc status` must be clean
# Leaves the workspace holding the smoke results (params.yaml, dvc.lock, reports/ changed): run it
# on a throwaway checkout. Writes the gate table to ${CI_OUT:-reports/ci}/gate.md.
# `source scripts/ci_smoke.sh` defines the steps without running them (tests call `reproducible`).
set -euo pipefail

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

# The workspace's results must equal those of the other clean run, snapshot file $1.
reproducible() {
  python -m fewshot.gate compare "$1" --exact --out "${out:-.}/reproducibility.md"
}

wipe_outputs() {
  rm -rf .dvc/cache data/*/raw data/*/curated data/*/episodes data/*/features data/models \
    reports/metrics reports/plots reports/figures
}

main() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  export PATH="$PWD/.venv/bin:$PATH" DVC_NO_ANALYTICS=1
  # The tests' smoke run (FEWSHOT_SMOKE_SNAPSHOT) trained with one torch thread per process
  # (tests/conftest.py): the thread count moves trained weights, so this run uses the same.
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  out="${CI_OUT:-reports/ci}"
  mkdir -p "$out"
  if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
    echo "error: uncommitted changes in $PWD; scripts/ci_smoke.sh overwrites the workspace, run it on a clean checkout" >&2
    exit 2
  fi

  step "smoke preset, run 1"
  python -m fewshot.tools.experiments run smoke --name "ci-smoke-$(date +%s)"
  python -m fewshot.gate snapshot "$out/run1.json"

  if [[ -n "${FEWSHOT_SMOKE_SNAPSHOT:-}" && -f "$FEWSHOT_SMOKE_SNAPSHOT" ]]; then
    step "reproducibility: run 1 against the end-to-end test's clean run ($FEWSHOT_SMOKE_SNAPSHOT)"
    reproducible "$FEWSHOT_SMOKE_SNAPSHOT"
  else
    step "smoke preset, run 2 from clean"
    wipe_outputs
    dvc repro --force --no-run-cache
    step "reproducibility: run 2 against run 1"
    reproducible "$out/run1.json"
  fi

  step "regression gate against pipelines/baselines/smoke.json"
  python -m fewshot.gate compare pipelines/baselines/smoke.json --out "$out/gate.md"

  step "dvc status must be clean"
  status="$(dvc status)"
  echo "$status"
  if [[ "$status" != *"up to date"* ]]; then
    echo "error: dvc status is not clean after the smoke run" >&2
    exit 1
  fi
  step "smoke CI passed"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
