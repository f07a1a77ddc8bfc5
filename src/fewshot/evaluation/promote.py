"""`python -m fewshot.gate promote`, once the gate passed: the workspace's models, each with its
checkpoint's hash, calibration and results, handed to the model registry (fewshot.core.model_registry)."""

from __future__ import annotations

import json

from fewshot.core import params as params_lib
from fewshot.core import paths
from fewshot.core.errors import UserError
from fewshot.core.fileio import sha256_file
from fewshot.core.model_registry import Candidate, register


def promote(current: dict, baseline: str, alias: str, prefix: str) -> None:
    """Register the workspace's models that `current` holds results of; print where each went."""
    candidates = []
    for name, result in sorted(current["models"].items()):
        model_file = paths.model_file(name)
        if not model_file.is_file():
            raise UserError(f"model '{name}' has results but no {model_file}; run `dvc repro` (or "
                            "`dvc pull`) before promoting")
        sha256 = sha256_file(model_file)
        calibration = paths.calibration_file(model_file)
        fitted = json.loads(calibration.read_text()) if calibration.is_file() else {}
        if fitted.get("model_sha256") != sha256:
            raise UserError(f"model '{name}': {calibration} is not the calibration of {model_file}; "
                            f"re-run evaluate@{name} before promoting")
        tags = {key: str(result[key]) for key in ("accuracy", "accuracy_ci95", "ece_calibrated")}
        candidates.append(Candidate(name, sha256, tags | {"temperature": str(fitted["temperature"]),
                                                          "gate_baseline": baseline}))
    for row in register(candidates, params_lib.load().tracking.experiment, alias, prefix):
        print(f"{row['registered']} version {row['version']}{' (new)' if row['new'] else ''} "
              f"@{alias}: models:/{row['registered']}@{alias}")
