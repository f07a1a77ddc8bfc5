"""Mutation test of the real-data gate: plant realistic regressions one at a time, run
`bash scripts/ci_gate.sh` on each, and check that the gate fails naming the regressed models (and
passes for an unchanged rerun).

  python benchmarks/gate_mutations.py                 every mutation (~1 h on 2 cores)
  python benchmarks/gate_mutations.py unchanged lr_x100

Each mutation is a one-line edit of the committed code or params, committed in a throwaway clone of
HEAD; ci_gate.sh then runs the CI preset there. The clones share this checkout's DVC cache, so each
run repeats only the stages its edit touches. Needs pipelines/baselines/ci.json committed
(`bash scripts/ci_gate.sh --update-baseline`). Writes benchmarks/results/gate_mutations.json and
prints a markdown table: mutation, expected, caught?, the failing models with their paired drop,
time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "gate_mutations.json"


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    file: str = ""
    old: str = ""
    new: str = ""
    caught: bool = True  # what the gate should do with it


MUTATIONS = [
    Mutation("unchanged", "no change: a rerun of the committed code", caught=False),
    Mutation("lr_x100", "learning rate x100 in model_defaults (0.001 -> 0.1)", "params.yaml",
             "train_n_way: 20, train_n_query: 0, lr: 0.001,", "train_n_way: 20, train_n_query: 0, lr: 0.1,"),
    Mutation("quarter_head", "protonet keeps a quarter of its embedding",
             "src/fewshot/models/methods/protonet.py",
             "        return self.head(features)\n",
             "        out = self.head(features)\n        return out[..., : max(1, out.shape[-1] // 4)]\n"),
    Mutation("shuffled_texts", "each class gets the next class's text embedding",
             "src/fewshot/data/text.py",
             "return torch.nn.functional.normalize(torch.stack(means), dim=-1), hashes",
             "return torch.nn.functional.normalize(torch.stack(means).roll(1, 0), dim=-1), hashes"),
    Mutation("temperature_on_test", "temperature fitted on the test episodes instead of val (a leak)",
             "src/fewshot/stages/evaluate.py",
             "calibrated(val_results, results, params.evaluate.ece_bins)",
             "calibrated(results, results, params.evaluate.ece_bins)", caught=False),
    Mutation("sampler_shares_groups", "episode sampler may draw support and query from one group",
             "src/fewshot/data/episodes.py",
             "size=spec.n_shot + spec.n_query, replace=False)",
             "size=spec.n_shot + spec.n_query, replace=True)"),
]


def throwaway(mutation: Mutation, work: Path) -> Path:
    """A clone of HEAD with the mutation committed, sharing this checkout's venv, cache, downloads."""
    clone = work / mutation.name
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", "-B", "mutation", head], check=True)
    for shared in (".venv", ".dvc/cache", "data/downloads"):
        (ROOT / shared).mkdir(parents=True, exist_ok=True)
        os.symlink(ROOT / shared, clone / shared)
    if mutation.file:
        path = clone / mutation.file
        text = path.read_text()
        if text.count(mutation.old) != 1:
            sys.exit(f"error: mutation '{mutation.name}': expected the text to replace exactly once "
                     f"in {mutation.file}, found it {text.count(mutation.old)} times")
        path.write_text(text.replace(mutation.old, mutation.new))
        subprocess.run(["git", "-C", str(clone), "commit", "--quiet", "-am", f"mutation: {mutation.what}"],
                       check=True)
    return clone


def failing_rows(table: str) -> list[dict]:
    """The REGRESSION rows of the gate's markdown table: model, paired delta, reason."""
    rows = []
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) > 3 and cells[-1].startswith("**REGRESSION**"):  # the verdict is the last column
            rows.append({"model": cells[0], "paired_delta": cells[2],
                         "reason": re.sub(r"^\*\*REGRESSION\*\*: ", "", cells[-1])})
    return rows


def run(mutation: Mutation, work: Path) -> dict:
    clone = throwaway(mutation, work)
    start = time.perf_counter()
    done = subprocess.run(["bash", str(clone / "scripts" / "ci_gate.sh")], capture_output=True, text=True,
                          env=os.environ | {"CI_GATE_DIR": str(work / f"{mutation.name}-run")})
    seconds = time.perf_counter() - start
    table_file = clone / "reports" / "ci" / "gate-ci.md"
    table = table_file.read_text() if table_file.is_file() else ""
    rows = failing_rows(table)
    result = {"mutation": mutation.name, "what": mutation.what, "expected_caught": mutation.caught,
              "exit": done.returncode, "caught": done.returncode != 0, "failing": rows,
              "seconds": round(seconds, 1)}
    if done.returncode not in (0, 1):
        result["error"] = (done.stderr or done.stdout).strip().splitlines()[-5:]
    shutil.rmtree(work / f"{mutation.name}-run", ignore_errors=True)
    shutil.rmtree(clone, ignore_errors=True)
    return result


def _failure(row: dict) -> str:
    """A failing model in a few words: its paired delta, and the reason unless it is accuracy."""
    if row["paired_delta"] and row["reason"].startswith("accuracy dropped"):
        return f"{row['model']} {row['paired_delta']}"
    return f"{row['model']} {row['paired_delta']} ({row['reason']})".replace("  ", " ")


def markdown(results: list[dict]) -> str:
    lines = ["| mutation | gate should fail | gate failed | failing models: paired Δ [95% CI] or reason "
             "| time |",
             "|---|---|---|---|---|"]
    for r in results:
        changed = [row for row in r["failing"] if row["reason"].startswith("test episodes changed")]
        if changed and len(changed) == len(r["failing"]):
            models = f"all {len(changed)} models: test episodes changed, not comparable"
        else:
            models = "; ".join(_failure(row) for row in r["failing"])
        lines.append(f"| {r['mutation']}: {r['what']} | {'yes' if r['expected_caught'] else 'no'} | "
                     f"{'**yes**' if r['caught'] else 'no'} (exit {r['exit']}) | {models or '–'} | "
                     f"{r['seconds']:.0f} s |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"mutations to run (default all: "
                        f"{', '.join(m.name for m in MUTATIONS)})")
    args = parser.parse_args()
    known = {m.name: m for m in MUTATIONS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        sys.exit(f"error: unknown mutation '{unknown[0]}'; expected one of {', '.join(known)}")
    if not (ROOT / "pipelines" / "baselines" / "ci.json").is_file():
        sys.exit("error: no pipelines/baselines/ci.json; run `bash scripts/ci_gate.sh --update-baseline` "
                 "and commit it")
    chosen = [known[n] for n in args.names] if args.names else MUTATIONS
    previous = json.loads(OUT.read_text()) if OUT.is_file() else {}
    with tempfile.TemporaryDirectory(prefix="fewshot-mutations-") as tmp:
        for mutation in chosen:
            print(f"== {mutation.name}: {mutation.what}", flush=True)
            result = run(mutation, Path(tmp))
            previous[mutation.name] = result
            print(markdown([result]).splitlines()[-1], flush=True)
            OUT.parent.mkdir(parents=True, exist_ok=True)
            tmp_out = OUT.with_suffix(".json.tmp")
            tmp_out.write_text(json.dumps(previous, indent=1) + "\n")
            tmp_out.replace(OUT)
    ordered = [previous[m.name] for m in MUTATIONS if m.name in previous]
    print("\n" + markdown(ordered))
    wrong = [r["mutation"] for r in ordered if r["caught"] != r["expected_caught"]]
    if wrong:
        sys.exit(f"error: the gate's verdict differs from the expected one for: {', '.join(wrong)}")


if __name__ == "__main__":
    main()
