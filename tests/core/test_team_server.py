"""Team mode: the pipeline's stages log to a real `mlflow server` on 127.0.0.1 (README, "Team mode")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from fewshot.core.typed import merged
from tests.conftest import ROOT, free_port, http_server

pytestmark = pytest.mark.slow


def test_stages_log_runs_and_artifacts_to_a_real_server(tmp_path, image_folder):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
           "--artifacts-destination", str(tmp_path / "artifacts")]
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text(yaml.safe_dump(merged(
        yaml.safe_load((ROOT / "params.yaml").read_text()),
        {"domains": {"images": {"source": "image_folder", "folder": str(image_folder),
                                "settings": {"size": 32}, "curate": {"min_groups": 4}}}})))
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
    with http_server(cmd, port, "/health", tmp_path / "server.log") as server:
        for stage in ("ingest", "curate"):
            done = subprocess.run([sys.executable, "-m", f"fewshot.stages.{stage}", "images"], cwd=project,
                                  env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        client = mlflow.MlflowClient(uri)
        experiment = client.get_experiment_by_name("fewshot")
        runs = {r.data.tags["stage"]: r for r in client.search_runs([experiment.experiment_id])}
        assert set(runs) == {"ingest@images", "curate@images"}
        assert all(r.info.status == "FINISHED" and r.data.tags["domain"] == "images"
                   for r in runs.values())
        assert runs["ingest@images"].data.metrics["items"] == 48
        logged = [a.path for a in client.list_artifacts(runs["curate@images"].info.run_id)]
        assert logged, "curate's validation report should reach the server's artifact store"
        assert not (project / "mlflow.db").exists() and not (project / "mlruns").exists()
    assert server.returncode is not None  # the whole process group was stopped
    assert any((tmp_path / "artifacts").rglob("*.json"))
