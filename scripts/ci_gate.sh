#!/usr/bin/env bash
# The real-data regression gate: the CI preset (pipelines/ci.yaml: a subset of the emoji designs
# and of PLAsTiCC, from the same pinned packages) run through real `dvc exp run`, then
# `python -m fewshot.gate compare pipelines/baselines/ci.json`. Exits non-zero on a regression and
# prints the table (also written to reports/ci/gate-ci.md of this checkout).
#
#   bash scripts/ci_gate.sh                    gate the commit HEAD (CI runs it after the tests;
#                                              run it before you push)
#   bash scripts/ci_gate.sh --update-baseline  remake pipelines/baselines/ci.json with its machine
#                                              noise (= bash scripts/baseline.sh ci, whose
#                                              folder is BASELINE_DIR; commit the file)
#
# It tests the commit HEAD, never uncommitted edits: the run happens in a throwaway clone
# (${CI_GATE_DIR:-a temporary folder}), so this checkout's params.yaml, dvc.lock and reports/ stay as
# they are. The clone shares this checkout's DVC cache, so a rerun after a change repeats only the
# stages the change touches (DVC's run cache); the first run fetches the pinned packages into
# data/downloads/ of this checkout and reuses them after.
# `source scripts/ci_gate.sh` defines the steps without running them.
set -euo pipefail

# step, throwaway_clone
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  local root="$PWD"
  case "${1:-}" in
    "") ;;
    --update-baseline) exec bash scripts/baseline.sh ci ;;
    *) echo "error: unknown argument '$1'; expected nothing or --update-baseline" >&2; exit 2 ;;
  esac
  export PATH="$root/.venv/bin:$PATH" DVC_NO_ANALYTICS=1
  # The stages import the clone's own code, not the editable install's (this checkout's src/).
  local dir
  dir="$(realpath -m "${CI_GATE_DIR:-$(mktemp -d -t fewshot-ci-gate.XXXXXX)}")"
  export PYTHONPATH="$dir/src${PYTHONPATH:+:$PYTHONPATH}"
  if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
    echo "note: uncommitted changes are not tested; ci_gate.sh runs the commit HEAD ($(git rev-parse --short HEAD))" >&2
  fi
  mkdir -p reports/ci

  step "throwaway clone of HEAD in $dir"
  throwaway_clone "$root" "$dir"
  cd "$dir"

  step "CI preset (pipelines/ci.yaml) on the real data"
  python -m fewshot.tools.experiments run ci --name "ci-gate-$(date +%s)"

  step "regression gate against pipelines/baselines/ci.json (committed at HEAD)"
  local rc=0
  python -m fewshot.gate compare pipelines/baselines/ci.json --out "$root/reports/ci/gate-ci.md" || rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "error: the real-data gate failed (exit $rc); table in reports/ci/gate-ci.md" >&2
    exit "$rc"
  fi
  step "real-data gate passed"
  cd "$root"
  [[ -n "${CI_GATE_DIR:-}" ]] || rm -rf "$dir"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
