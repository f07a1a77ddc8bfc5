"""Stage `check`: validate the whole params.yaml before anything else can run on it.

Usage: python -m fewshot.stages.check       (run by `dvc repro` whenever any key of params.yaml changes)
Params: all of params.yaml. Writes reports/check.json, always with the same content: every train@
stage depends on it, so none runs before the params passed (a `models` key is part of its shell
command; a bad option would otherwise be found only after DVC removed the old model).

Every stage validates params.yaml when it starts (`params.load`: types, ranges, and the rules
across sections in `fewshot.core.consistency`), but `dvc exp run -S trian.lr=0.1` changes no key
that a stage lists, so without this stage DVC would run nothing and report success. This stage
depends on every key, so a misspelled, missing or ill-typed override fails here with its name.
"""

from __future__ import annotations

from fewshot.core import params as params_lib
from fewshot.core import paths
from fewshot.core.errors import one_line_errors
from fewshot.core.fileio import write_json


@one_line_errors
def main() -> None:
    params = params_lib.load()
    write_json(paths.CHECK, {"params.yaml": "valid"})
    print(f"check: params.yaml is valid ({len(params.models)} models)")


if __name__ == "__main__":
    main()
