"""The pipeline's stages, one module each, run by `dvc repro` as `python -m fewshot.stages.<name>`.

Run that way, a tracked stage starts its MLflow companion process here, before its module imports
torch, pandas and the rest: MLflow's own ≈ 3.5 s of imports and store opening then run on the
other core beside the stage's (`fewshot.core.tracking_worker`). Importing a stage module from
Python (tests, tools) starts nothing.
"""

import sys

from fewshot.core import tracking_worker

TRACKED = ("ingest", "curate", "episodes", "embed", "train", "evaluate", "report")

_module = sys.orig_argv[sys.orig_argv.index("-m") + 1] if "-m" in sys.orig_argv[:-1] else ""
if _module in {f"fewshot.stages.{name}" for name in TRACKED} and not {"-h", "--help"} & set(sys.argv):
    tracking_worker.prestart()
