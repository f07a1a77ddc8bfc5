#!/usr/bin/env bash
# Fresh-clone benchmark: clone this repository to a temp dir, then time the README's main command
# in three parts: environment set-up, the first `dvc repro` (downloads included), a no-op `dvc repro`.
# Usage: bash benchmarks/fresh_clone.sh [REPO_URL_OR_PATH]   (default: this checkout)
set -euo pipefail
src=${1:-$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)}
work=$(mktemp -d)
git clone -q "$src" "$work/repo"
cd "$work/repo"
seconds() { local start=$(date +%s.%N); "$@" > "$work/$(echo "$*" | tr ' /' '__').log" 2>&1; \
            echo "$(date +%s.%N) - $start" | bc; }
echo "clone: $work/repo  machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
echo "setup (venv, pinned deps): $(seconds make setup) s"
echo "first dvc repro:           $(seconds make repro) s"
echo "no-op make repro:          $(seconds make repro) s"
grep -h "^evaluate@" "$work"/*.log || true
