"""End to end: the real `dvc repro` over every stage, on tiny generated image and light-curve folders.

The repository's own dvc.yaml and params.yaml (shrunk by pipelines/smoke.yaml) run in a temporary
git repository; MLflow logs to a temporary sqlite store (the `project` fixture of conftest, shared
with test_pipeline_models.py). Here: every stage runs and logs, DVC reruns exactly what a change
touches, and bad params or data fail in one line without losing outputs.
"""

from __future__ import annotations

import json
import shutil
import sys

import mlflow
import pandas as pd
import pytest
import yaml

from fewshot.data.episodes import file_hash
from tests.conftest import ROOT, runs_by_stage, sh

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
MODELS = list(PARAMS["models"])
DOMAIN_OF = {name: entry["domain"] for name, entry in PARAMS["models"].items()}
DOMAINS = list(PARAMS["domains"])
PER_MODEL = {f"{stage}@{model}" for stage in ("train", "evaluate") for model in MODELS}
PER_DOMAIN = {f"{stage}@{domain}" for stage in ("ingest", "curate", "episodes", "embed")
              for domain in DOMAINS}
STAGES = {"check", "report"} | PER_DOMAIN | PER_MODEL
SMOKE_TEST_EPISODES = {"images": 200, "light_curves": 100}
LOGGED = STAGES - {"check"}  # check validates params and logs nothing
pytestmark = pytest.mark.slow


def test_repro_runs_every_stage_and_writes_complete_metrics(project):
    for stage in STAGES:
        assert f"Running stage '{stage}'" in project["first"].stdout
    report = (project["repo"] / "reports/report.md").read_text()
    for model in MODELS:
        metrics = json.loads((project["repo"] / f"reports/metrics/{model}.json").read_text())
        for key in ("accuracy", "accuracy_ci95", "ece", "nll", "brier", "device", "episodes_hash",
                    "ece_calibrated", "nll_calibrated", "temperature", "method", "backbone"):
            assert key in metrics, (model, key)
        assert metrics["episodes"] == SMOKE_TEST_EPISODES[DOMAIN_OF[model]]
        assert metrics["domain"] == DOMAIN_OF[model]
        assert metrics["latency"]["query_p50_ms"] > 0 and metrics["latency"]["timed_episodes"] == 3
        assert f"| {model} | {metrics['method']} | {metrics['backbone']} |" in report
    # Own data: the report names it per domain, and the committed docs/results/ pages are left alone.
    assert f"Data: **image_folder** (folder `{project['folder']}`)" in report
    assert f"Data: **time_series_folder** (folder `{project['series']}`)" in report
    assert report.index("## images") < report.index("## light_curves")
    assert not (project["repo"] / "docs/results").exists()
    warnings = json.loads((project["repo"] / "reports/metrics/zero_shot.json").read_text())["warnings"]
    assert any("train_n_way=64 exceeds the 12 training classes; trained 12-way" in w for w in warnings)
    assert "### Warnings (images)" in report and "train_n_way=64 exceeds" in report
    assert all((project["repo"] / f"reports/figures/{f}_{d}.png").stat().st_size > 1000
               for f in ("accuracy", "confusion", "reliability", "episode_accuracy", "latency")
               for d in DOMAINS)
    confusion = pd.read_csv(project["repo"] / "reports/plots/lc_protonet/confusion.csv")
    assert confusion["queries"].sum() == 100 * 3 * 2  # episodes x n_way x n_query, every query once
    assert confusion["true_class"].nunique() == 6  # the 6 test classes, 3 per episode


def test_every_stage_logged_one_tagged_mlflow_run(project):
    runs = runs_by_stage(project["uri"])
    assert set(runs) == LOGGED
    test_hash = {d: file_hash(project["repo"] / f"data/{d}/episodes/test.parquet") for d in DOMAINS}
    val_hash = {d: file_hash(project["repo"] / f"data/{d}/episodes/val.parquet") for d in DOMAINS}
    assert test_hash["images"] != test_hash["light_curves"]
    commit = sh(["git", "rev-parse", "HEAD"], project["repo"], project["env"]).stdout.strip()
    for stage, stage_runs in runs.items():
        assert len(stage_runs) == 1 and stage_runs[0].info.status == "FINISHED", stage
        assert stage_runs[0].data.tags["git_commit"] == commit, stage
        if stage != "report":  # every run of a domain's data carries the domain as a tag
            domain = stage.split("@")[1] if stage.split("@")[1] in DOMAINS else DOMAIN_OF[stage.split("@")[1]]
            assert stage_runs[0].data.tags["domain"] == domain, stage
    for domain in DOMAINS:
        assert runs[f"episodes@{domain}"][0].data.tags["episodes_hash"] == test_hash[domain]
    for model in MODELS:  # training sees the val episodes only
        assert runs[f"evaluate@{model}"][0].data.tags["episodes_hash"] == test_hash[DOMAIN_OF[model]]
        assert runs[f"train@{model}"][0].data.tags["val_episodes_hash"] == val_hash[DOMAIN_OF[model]]
    history = mlflow.MlflowClient(project["uri"]).get_metric_history(
        runs["train@protonet"][0].info.run_id, "val_accuracy")
    assert [m.step for m in history] == [0, 10, 20]
    # one `dvc repro`, one group: every run carries the same pipeline_run tag
    assert len({r[0].data.tags["pipeline_run"] for r in runs.values()}) == 1


def _datasets(run) -> dict[str, tuple[str, str, str]]:
    """A run's MLflow datasets: name -> (digest, context, sha256 tag)."""
    found = {}
    for given in run.inputs.dataset_inputs:
        tags = {t.key: t.value for t in given.tags}
        found[given.dataset.name] = (given.dataset.digest, tags["mlflow.data.context"], tags["sha256"])
    return found


def test_train_and_evaluate_log_what_they_read_as_mlflow_datasets(project):
    from fewshot.core.fileio import sha256_file

    repo, runs = project["repo"], runs_by_stage(project["uri"])
    val_hash = file_hash(repo / "data/images/episodes/val.parquet")
    features = sha256_file(repo / "data/images/features/efficientnet_lite0.safetensors")
    trained = _datasets(runs["train@protonet"][0])
    assert set(trained) == {"images/curated items", "images/val episodes",
                            "images/features/efficientnet_lite0", "images/class texts"}
    assert trained["images/val episodes"] == (val_hash[:36], "validation", val_hash)
    assert trained["images/features/efficientnet_lite0"] == (features[:36], "training", features)
    evaluated = _datasets(runs["evaluate@protonet"][0])
    test_hash = file_hash(repo / "data/images/episodes/test.parquet")
    assert evaluated["images/test episodes"] == (test_hash[:36], "evaluation", test_hash)
    model = sha256_file(repo / "data/models/protonet/model.pt")
    assert evaluated["model protonet"] == (model[:36], "evaluation", model)
    assert evaluated["images/features/efficientnet_lite0"][2] == features
    assert trained["images/curated items"][2] == evaluated["images/curated items"][2]


def test_second_repro_changes_nothing(project):
    again = sh(["dvc", "repro"], project["repo"], project["env"])
    assert "Data and pipelines are up to date." in again.stdout
    assert "Running stage" not in again.stdout


def test_impossible_n_way_is_one_line_and_writes_nothing(project):
    repo, env = project["repo"], project["env"]
    before = file_hash(repo / "data/images/episodes/test.parquet")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    bad = repo / "bad_params"
    bad.mkdir()
    (bad / "params.yaml").write_text(yaml.safe_dump(params | {"n_way": 10}))
    shutil.copytree(repo / "data", bad / "data", symlinks=True)
    done = sh([sys.executable, "-m", "fewshot.stages.episodes", "images"], bad, env, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: n_way=10 is larger than the 6 classes of split 'val'"]
    assert file_hash(bad / "data/images/episodes/test.parquet") == before


def test_misspelled_key_fails_the_stage_naming_it(project):
    repo, env = project["repo"], project["env"]
    bad = repo / "typo"
    bad.mkdir()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["lrate"] = 0.1
    (bad / "params.yaml").write_text(yaml.safe_dump(params))
    done = sh([sys.executable, "-m", "fewshot.stages.train", "protonet"], bad, env, check=False)
    assert done.returncode == 2 and "unknown params key 'train.lrate'" in done.stderr


def test_exp_run_with_a_misspelled_key_fails_naming_it_and_changes_nothing(project):
    repo, env = project["repo"], project["env"]
    before = (repo / "dvc.lock").read_text()
    refused = sh(["dvc", "exp", "run", "-S", "trian.lr=0.1"], repo, env, check=False)
    assert refused.returncode != 0 and "trian" in refused.stderr  # DVC refuses an unknown key
    appended = sh(["dvc", "exp", "run", "-S", "+trian.lr=0.1"], repo, env, check=False)
    assert appended.returncode != 0  # `+` makes DVC add it: the check stage refuses it
    assert "unknown params key 'trian'; valid keys: seed, n_way" in appended.stdout + appended.stderr
    sh(["git", "checkout", "--", "params.yaml"], repo, env)
    assert (repo / "dvc.lock").read_text() == before


def test_more_shots_reruns_only_stages_that_read_them(project):
    """What `dvc exp run -S n_shot=2` would start with: `dvc repro --dry` after the same edit.

    Real experiments with other shots and ways run in test_sweep. A dry run cannot see that the
    evaluate stages follow (their inputs change only when train runs), so they are not listed.
    """
    repo, env = project["repo"], project["env"]
    params = repo / "params.yaml"
    original = params.read_text()
    params.write_text(yaml.safe_dump(yaml.safe_load(original) | {"n_shot": 2}, sort_keys=False))
    try:
        done = sh(["dvc", "repro", "--dry"], repo, env)
    finally:
        params.write_text(original)
    ran = {line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage")}
    # Both domains: evaluate records the shots it scored
    assert ran == {"check", "report"} | {f"episodes@{d}" for d in DOMAINS} | PER_MODEL
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout


def test_more_test_episodes_rerun_evaluate_and_retrain_nothing(project):
    """train@ reads the val episodes only: a longer test file must not retrain any model. (On the
    light-curve domain: its 5 evaluations cost half of the 8 image ones.) Back to the committed
    params, the episodes stage writes the same file again; what the longer run changed is then
    put back from a copy rather than by evaluating everything once more."""
    repo, env = project["repo"], project["env"]
    params = repo / "params.yaml"
    original = params.read_text()
    before = file_hash(repo / "data/light_curves/episodes/test.parquet")
    more = yaml.safe_load(original)
    more["domains"]["light_curves"]["episodes"]["test_episodes"] = 120
    changed = ["dvc.lock", "reports", "data/light_curves/episodes",
               *(f"data/models/{m}.calibration.json" for m in MODELS if DOMAIN_OF[m] == "light_curves")]
    saved = repo.parent / "before_more_episodes"
    for rel in changed:
        copy = shutil.copytree if (repo / rel).is_dir() else shutil.copy2
        (saved / rel).parent.mkdir(parents=True, exist_ok=True)
        copy(repo / rel, saved / rel)
    params.write_text(yaml.safe_dump(more, sort_keys=False))
    try:
        done = sh(["dvc", "repro"], repo, env)
    finally:
        params.write_text(original)
    ran = {line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage")}
    # only the light-curve domain's test file changed: its evaluations rerun, no model retrains
    evaluations = {f"evaluate@{m}" for m in MODELS if DOMAIN_OF[m] == "light_curves"}
    assert ran == {"check", "episodes@light_curves", "report"} | evaluations
    assert json.loads((repo / "reports/metrics/lc_protonet.json").read_text())["episodes"] == 120
    sh(["dvc", "repro", "--single-item", "episodes@light_curves"], repo, env)  # committed params
    assert file_hash(repo / "data/light_curves/episodes/test.parquet") == before  # the same episodes
    for rel in changed:
        if (repo / rel).is_dir():
            shutil.rmtree(repo / rel)
            shutil.copytree(saved / rel, repo / rel)
        else:
            shutil.copy2(saved / rel, repo / rel)
    shutil.rmtree(saved)
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout


def test_any_edit_to_the_image_folder_makes_ingest_stale(project):
    """The folder is a DVC dependency of ingest: `dvc status` once said "up to date" after edits."""
    repo, env, folder = project["repo"], project["env"], project["folder"]

    def stale() -> bool:
        out = sh(["dvc", "status", "ingest@images"], repo, env).stdout
        return "changed deps" in out and str(folder) in out

    image = folder / "class_03" / "item_1.png"
    original = image.read_bytes()
    (folder / "class_03" / "extra.png").write_bytes(original)
    assert stale()  # a file added
    (folder / "class_03" / "extra.png").unlink()
    assert not stale()
    image.write_bytes((folder / "class_04" / "item_1.png").read_bytes())
    assert stale()  # an image replaced
    image.write_bytes(original)
    shutil.move(folder / "class_03", repo / "moved_away")
    assert stale()  # a class removed
    shutil.move(repo / "moved_away", folder / "class_03")
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout


def test_a_models_key_with_shell_code_never_reaches_a_shell(project, tmp_path):
    repo, env = project["repo"], project["env"]
    marker = tmp_path / "INJECTED"
    params = repo / "params.yaml"
    original = params.read_text()
    evil = yaml.safe_load(original)
    evil["models"][f"x;touch {marker};exit 0;"] = {"domain": "images", "method": "protonet"}
    params.write_text(yaml.safe_dump(evil, sort_keys=False))
    try:
        full = sh(["dvc", "repro"], repo, env, check=False)
        targeted = sh(["dvc", "repro", f"train@x;touch {marker};exit 0;"], repo, env, check=False)
    finally:
        params.write_text(original)
    for done in (full, targeted):
        assert done.returncode != 0 and "is not a valid name" in done.stdout + done.stderr
    assert not marker.exists()
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout
