# Shell steps shared by scripts/ci_gate.sh and scripts/baseline.sh (sourced, not run).

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

# A clone of HEAD at $2 sharing the DVC cache and the package downloads of checkout $1.
throwaway_clone() {
  local src="$1" dest="$2"
  rm -rf "$dest"
  git clone --quiet --no-hardlinks "$src" "$dest"
  git -C "$dest" checkout --quiet --detach "$(git -C "$src" rev-parse HEAD)"
  mkdir -p "$src/.dvc/cache" "$src/data/downloads"
  (cd "$dest" && dvc cache dir --local "$src/.dvc/cache" >/dev/null)
  mkdir -p "$dest/data"
  ln -s "$src/data/downloads" "$dest/data/downloads"
}
