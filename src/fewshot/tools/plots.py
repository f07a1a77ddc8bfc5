"""Keep dvc.yaml's top-level plots in step with params `models` (dvc.yaml's plots cannot loop).

Usage:
  python -m fewshot.tools.plots           # exit 1 and show the difference when they disagree
  python -m fewshot.tools.plots --write   # rewrite the block from params.yaml

The block after the `# Top-level plots` line of dvc.yaml is generated: one line per model of
params.yaml in each per-model plot. The test suite runs the check, so a model added to
params.yaml without its plots fails CI with this command in the message.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

import yaml

from fewshot.core.errors import UserError, one_line_errors
from fewshot.core.fileio import atomic_path

MARKER = "# Top-level plots"
PER_MODEL = [("Reliability diagram (raw)", "simple", "confidence", "reliability.csv"),
             ("Reliability diagram (after temperature scaling)", "simple", "confidence",
              "reliability_calibrated.csv"),
             ("Per-episode accuracy", "scatter", "episode_id", "episodes.csv")]


def block(models: list[str]) -> str:
    """The generated tail of dvc.yaml for these models."""
    lines = [f"{MARKER} list every model of params.yaml (generated: python -m fewshot.tools.plots "
             "--write).",
             "# `dvc plots diff <exp> <exp> ...` overlays experiments; \"Accuracy vs shots\" then has "
             "one point per", "# experiment and model.", "plots:",
             "  - Accuracy vs shots:", "      template: scatter", "      x: n_shot", "      y:",
             "        reports/summary.csv: accuracy"]
    for title, template, x, file in PER_MODEL:
        lines += [f"  - {title}:", f"      template: {template}", f"      x: {x}", "      y:"]
        lines += [f"        reports/plots/{name}/{file}: accuracy" for name in models]
    return "\n".join(lines) + "\n"


def split(dvc_yaml: str) -> tuple[str, str]:
    """(the hand-written stages, the generated plots block) of dvc.yaml's text."""
    at = dvc_yaml.find(MARKER)
    if at < 0:
        raise UserError(f"dvc.yaml has no '{MARKER}' line; expected the generated plots block last")
    return dvc_yaml[:at], dvc_yaml[at:]


def expected(dvc_yaml: Path = Path("dvc.yaml"), params: Path = Path("params.yaml")) -> tuple[str, str]:
    """(current, expected) text of dvc.yaml."""
    current = dvc_yaml.read_text()
    models = list((yaml.safe_load(params.read_text()) or {}).get("models") or {})
    return current, split(current)[0] + block(models)


@one_line_errors
def main() -> None:
    cli = argparse.ArgumentParser(prog="python -m fewshot.tools.plots", description=__doc__.split("\n")[0])
    cli.add_argument("--write", action="store_true", help="rewrite dvc.yaml's plots from params.yaml")
    args = cli.parse_args()
    current, wanted = expected()
    if current == wanted:
        print("dvc.yaml plots match params.yaml models")
        return
    if args.write:
        with atomic_path("dvc.yaml") as tmp:
            tmp.write_text(wanted)
        print("rewrote dvc.yaml's plots from params.yaml models")
        return
    sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), wanted.splitlines(True),
                                               "dvc.yaml", "dvc.yaml (from params.yaml)"))
    print("dvc.yaml plots differ from params.yaml models; run: python -m fewshot.tools.plots --write",
          file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
