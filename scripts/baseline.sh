#!/usr/bin/env bash
# Make the committed baseline of a preset, with its machine noise: one command per preset.
#
#   bash scripts/baseline.sh ci      -> pipelines/baselines/ci.json     (the real-data gate)
#   bash scripts/baseline.sh smoke   -> pipelines/baselines/smoke.json  (the smoke gate)
#
# In a throwaway clone of HEAD (${BASELINE_DIR:-a temporary folder}; this checkout's params.yaml,
# dvc.lock and reports/ stay as they are), sharing this checkout's DVC cache and package downloads:
#  1. `python -m fewshot.tools.experiments run PRESET`: the baseline run, on this machine's default
#     floating-point path (OMP_*, MKL_*, ATEN_CPU_CAPABILITY and ONEDNN_* of your shell are unset);
#  2. the same preset again, every stage from scratch, once per other floating-point path a CI
#     machine may take: one thread instead of all cores, and no AVX-512 (oneDNN, MKL and PyTorch's
#     own kernels held to AVX2). Trained models are not bit-identical across machines: a different
#     summation order changes the weights a little and training amplifies it (docs/experiments.md);
#  3. `python -m fewshot.gate noise`: the baseline, with per model the largest move of its accuracy
#     and calibrated ECE in those reruns (and in BASELINE_EXTRA_RUNS: space-separated LABEL=FILE
#     snapshots of the same preset and commit made on other machines); the gate's limits for a
#     model are at least `gate.machine_noise_factor` x that move.
# Writes pipelines/baselines/PRESET.json of this checkout (atomically: an interrupted run leaves
# the committed file as it was): commit it with the change that made it. The reruns use their own
# DVC cache, so they never enter the shared run cache. A failed run keeps its folder and logs.
set -euo pipefail

# Label and environment of each rerun: another thread count, another instruction set.
NOISE_RUNS=("1-thread|OMP_NUM_THREADS=1 MKL_NUM_THREADS=1"
            "no-avx512|ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_CBWR=AVX2")

main() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  local root="$PWD" preset="${1:-}"
  if [[ $# -ne 1 || ! "$preset" =~ ^[a-z0-9_]+$ || "$preset" == sweep_* || ! -f "pipelines/$preset.yaml" ]]; then
    echo "error: preset '${preset}' is not a preset of pipelines/ (pipelines/NAME.yaml, not a sweep); expected one argument, e.g. ci or smoke" >&2
    exit 2
  fi
  # shellcheck source=lib.sh
  source scripts/lib.sh
  export PATH="$root/.venv/bin:$PATH" DVC_NO_ANALYTICS=1
  unset OMP_NUM_THREADS MKL_NUM_THREADS MKL_CBWR ATEN_CPU_CAPABILITY ONEDNN_MAX_CPU_ISA
  local dir
  dir="$(realpath -m "${BASELINE_DIR:-$(mktemp -d -t fewshot-baseline.XXXXXX)}")"
  export PYTHONPATH="$dir/src${PYTHONPATH:+:$PYTHONPATH}"
  if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
    echo "note: uncommitted changes are not in the baseline; it is made from the commit HEAD ($(git rev-parse --short HEAD))" >&2
  fi

  step "throwaway clone of HEAD in $dir"
  throwaway_clone "$root" "$dir"
  cd "$dir"
  step "baseline run of pipelines/$preset.yaml"
  python -m fewshot.tools.experiments run "$preset" --name "baseline-$preset-$(date +%s)"
  python -m fewshot.gate snapshot "$dir/baseline.json"

  dvc cache dir --local "$dir/.noise-cache" >/dev/null
  local runs=() run label vars
  for run in "${NOISE_RUNS[@]}"; do
    label="${run%%|*}" vars="${run#*|}"
    step "machine-noise rerun '$label' ($vars), every stage"
    # shellcheck disable=SC2086  # vars is a list of NAME=VALUE words
    env $vars dvc repro --force --no-run-cache >"$dir/$label.log" 2>&1 \
      || { tail -20 "$dir/$label.log" >&2; echo "error: rerun '$label' failed; log: $dir/$label.log" >&2; exit 1; }
    python -m fewshot.gate snapshot "$dir/$label.json"
    runs+=("$label=$dir/$label.json")
  done
  # shellcheck disable=SC2206  # BASELINE_EXTRA_RUNS is a list of LABEL=FILE words
  runs+=(${BASELINE_EXTRA_RUNS:-})

  step "machine noise into the baseline"
  python -m fewshot.gate noise "$dir/baseline.json" "${runs[@]}"
  python -m fewshot.gate power "$dir/baseline.json"
  mkdir -p "$root/pipelines/baselines"
  local target="$root/pipelines/baselines/$preset.json"
  cp "$dir/baseline.json" "$target.tmp.$$"
  mv "$target.tmp.$$" "$target"
  step "wrote pipelines/baselines/$preset.json: commit it"
  cd "$root"
  [[ -n "${BASELINE_DIR:-}" ]] || rm -rf "$dir"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
