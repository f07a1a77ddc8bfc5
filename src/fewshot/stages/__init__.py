"""The pipeline's stages, one module each, run by `dvc repro` as `python -m fewshot.stages.<name>`.

Run that way, a tracked stage finds the project's MLflow tracking daemon here, before its module
imports pandas and the rest, and starts one when none is running: MLflow's own ≈ 3.3 s of imports
and store opening then run on the other core beside the stage's, once per pipeline run rather than
once per stage (`fewshot.core.tracking_daemon`). Importing a stage module from Python (tests,
tools) starts nothing.
"""

import sys

from fewshot.core import tracking_worker

TRACKED = ("ingest", "curate", "episodes", "embed", "train", "evaluate", "report")

_module = sys.orig_argv[sys.orig_argv.index("-m") + 1] if "-m" in sys.orig_argv[:-1] else ""
if _module in {f"fewshot.stages.{name}" for name in TRACKED} and not {"-h", "--help"} & set(sys.argv):
    tracking_worker.prestart()
