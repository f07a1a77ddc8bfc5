"""End to end: the real `dvc repro` over every stage, on a tiny generated image-folder dataset.

The repository's own dvc.yaml and params.yaml (shrunk by pipelines/smoke.yaml) run in a temporary
git repository; MLflow logs to a temporary sqlite store.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from fewshot.core import params as params_lib
from fewshot.data.episodes import file_hash
from fewshot.tools.shapes import make_image_folder
from tests.conftest import ROOT, git_dvc_project, plant_drop, project_env, sh, smoke_params

MODELS = list(yaml.safe_load((ROOT / "params.yaml").read_text())["models"])
PER_MODEL = {f"{stage}@{model}" for stage in ("train", "evaluate") for model in MODELS}
STAGES = {"check", "ingest", "curate", "episodes", "embed", "report"} | PER_MODEL
LOGGED = STAGES - {"check"}  # check validates params and logs nothing
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    folder = make_image_folder(tmp / "user_images", n_classes=24, per_class=4)
    params = smoke_params()
    params["data"]["folder"] = str(folder)
    env = project_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db")
    repo = git_dvc_project(tmp / "repo", params, env)
    first = sh(["dvc", "repro"], repo, env)
    if os.environ.get("FEWSHOT_SMOKE_SNAPSHOT"):  # .ci/run: compared with its own clean smoke run
        sh([sys.executable, "-m", "fewshot.gate", "snapshot", os.environ["FEWSHOT_SMOKE_SNAPSHOT"]],
           repo, env)
    return {"repo": repo, "env": env, "uri": env["MLFLOW_TRACKING_URI"], "first": first,
            "folder": folder}


def runs_by_stage(uri: str) -> dict[str, list]:
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("fewshot")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    grouped: dict[str, list] = {}
    for run in runs:
        grouped.setdefault(run.data.tags["stage"], []).append(run)
    return grouped


def test_repro_runs_every_stage_and_writes_complete_metrics(project):
    for stage in STAGES:
        assert f"Running stage '{stage}'" in project["first"].stdout
    report = (project["repo"] / "reports/report.md").read_text()
    for model in MODELS:
        metrics = json.loads((project["repo"] / f"reports/metrics/{model}.json").read_text())
        for key in ("accuracy", "accuracy_ci95", "ece", "nll", "brier", "device", "episodes_hash",
                    "ece_calibrated", "nll_calibrated", "temperature", "method", "backbone"):
            assert key in metrics, (model, key)
        assert metrics["episodes"] == 200
        assert metrics["latency"]["query_p50_ms"] > 0 and metrics["latency"]["timed_episodes"] == 3
        assert f"| {model} | {metrics['method']} | {metrics['backbone']} |" in report
    # Own data: the report names it, and the committed docs/results/ pages are left alone.
    assert f"Data: **image_folder** (folder `{project['folder']}`)" in report
    assert not (project["repo"] / "docs/results").exists()
    warnings = json.loads((project["repo"] / "reports/metrics/zero_shot.json").read_text())["warnings"]
    assert any("train_n_way=64 exceeds the 12 training classes; trained 12-way" in w for w in warnings)
    assert "## Warnings" in report and "train_n_way=64 exceeds" in report
    assert all((project["repo"] / f"reports/figures/{f}.png").stat().st_size > 1000
               for f in ("accuracy", "reliability", "episode_accuracy", "latency"))


def test_every_trained_model_learns_it_beats_chance_by_a_margin(project):
    """3-way smoke episodes: chance is 1/3. Every trained model (episodes > 0), zero-shot included
    (the shapes' texts say what they show, in combinations unseen in training), must clear it by 0.15
    with its whole 95% CI (measured: lowest zero_shot 0.59 ± 0.03). ConSE, an untrained baseline, is
    at chance on drawn shapes (ImageNet names do not describe them): not asserted. The protonet's
    kept state is the best of its val checks, never worse than its untrained state (step 0);
    tests/models/test_training.py asserts that training beats the untrained state by a margin."""
    chance, margin = 1 / 3, 0.15
    entries = params_lib.from_dict(yaml.safe_load((project["repo"] / "params.yaml").read_text())).models
    trained = [name for name, entry in entries.items() if entry.episodes > 0]
    assert {"protonet", "siamese", "zero_shot", "multimodal"} <= set(trained)
    for model in trained:
        metrics = json.loads((project["repo"] / f"reports/metrics/{model}.json").read_text())
        assert metrics["accuracy"] - metrics["accuracy_ci95"] > chance + margin, (model, metrics["accuracy"])
    runs = runs_by_stage(project["uri"])
    history = mlflow.MlflowClient(project["uri"]).get_metric_history(
        runs["train@protonet"][0].info.run_id, "val_accuracy")
    untrained = [m.value for m in history if m.step == 0][0]
    best = runs["train@protonet"][0].data.metrics["best_val_accuracy"]
    assert best >= untrained and best == max(m.value for m in history)


def test_every_stage_logged_one_tagged_mlflow_run(project):
    runs = runs_by_stage(project["uri"])
    assert set(runs) == LOGGED
    test_hash = file_hash(project["repo"] / "data/episodes/test.parquet")
    val_hash = file_hash(project["repo"] / "data/episodes/val.parquet")
    commit = sh(["git", "rev-parse", "HEAD"], project["repo"], project["env"]).stdout.strip()
    for stage, stage_runs in runs.items():
        assert len(stage_runs) == 1 and stage_runs[0].info.status == "FINISHED", stage
        assert stage_runs[0].data.tags["git_commit"] == commit, stage
    for stage in {"episodes"} | {f"evaluate@{model}" for model in MODELS}:
        assert runs[stage][0].data.tags["episodes_hash"] == test_hash
    for model in MODELS:  # training sees the val episodes only
        assert runs[f"train@{model}"][0].data.tags["val_episodes_hash"] == val_hash
    history = mlflow.MlflowClient(project["uri"]).get_metric_history(
        runs["train@protonet"][0].info.run_id, "val_accuracy")
    assert [m.step for m in history] == [0, 10, 20]


def test_second_repro_changes_nothing(project):
    again = sh(["dvc", "repro"], project["repo"], project["env"])
    assert "Data and pipelines are up to date." in again.stdout
    assert "Running stage" not in again.stdout


def test_gate_passes_a_rerun_of_the_same_model_and_fails_a_planted_drop(project):
    repo, env = project["repo"], project["env"]
    gate = [sys.executable, "-m", "fewshot.gate"]
    sh(gate + ["snapshot", "baseline.json"], repo, env)
    sh(["dvc", "repro", "--force", "--no-run-cache", "--downstream", "train@protonet"], repo, env)
    assert sh(gate + ["compare", "baseline.json"], repo, env).returncode == 0
    assert sh(gate + ["compare", "baseline.json", "--exact"], repo, env).returncode == 0
    csv = repo / "reports/plots/protonet/episodes.csv"
    original = csv.read_text()
    frame = pd.read_csv(csv)
    frame["accuracy"] = plant_drop(list(frame["accuracy"]), 0.03, queries=3)
    frame.to_csv(csv, index=False)
    failed = sh(gate + ["compare", "baseline.json"], repo, env, check=False)
    csv.write_text(original)
    assert failed.returncode == 1 and "| protonet |" in failed.stdout
    assert "**REGRESSION**: accuracy dropped 0.0300" in failed.stdout
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout


def test_trained_model_predicts_and_its_served_copy_answers_the_same(project):
    """The issue-5 done-when on the smoke run: fewshot-predict on a support folder, then the same
    through `mlflow models predict` of the model logged with its saved support set."""
    repo, env = project["repo"], project["env"]
    images = Path(yaml.safe_load((repo / "params.yaml").read_text())["data"]["folder"])
    for c in range(5):
        (repo / "sup" / f"class_{c:02d}").mkdir(parents=True)
        shutil.copy(images / f"class_{c:02d}/item_0.png", repo / "sup" / f"class_{c:02d}")
        for v in (1, 2, 3):
            shutil.copy(images / f"class_{c:02d}/item_{v}.png", repo / f"q_{c}_{v}.png")
    queries = sorted(str(p.name) for p in repo.glob("q_*.png"))
    bin_dir = Path(sys.executable).parent
    done = sh([str(bin_dir / "fewshot-predict"), "--model", "protonet", "--support", "sup",
               "--save-support", "s.safetensors", "--json", "a.json", *queries], repo, env)
    answers = json.loads((repo / "a.json").read_text())["answers"]
    assert len(answers) == len(queries) == len(done.stdout.strip().splitlines())
    assert all(a["label"] in {f"class {c:02d}" for c in range(5)} for a in answers)
    uri = sh([sys.executable, "-m", "fewshot.inference.serving", "--model", "protonet", "--support-set",
              "s.safetensors"], repo, env).stdout.strip().splitlines()[-1]
    request = {"dataframe_split": {"columns": ["path"], "data": [[str(repo / q)] for q in queries]}}
    (repo / "in.json").write_text(json.dumps(request))
    sh([str(bin_dir / "mlflow"), "models", "predict", "-m", uri, "-i", "in.json", "-t", "json",
        "--env-manager", "local", "-o", "out.json"], repo, env | {"FEWSHOT_SERVING_PATH_ROOT": str(repo)})
    served = json.loads((repo / "out.json").read_text())["predictions"]
    assert [r["label"] for r in served] == [a["label"] for a in answers]
    assert [r["probability"] for r in served] == pytest.approx([a["probability"] for a in answers])
    for leftover in ("sup", *queries, "s.safetensors", "a.json", "in.json", "out.json"):
        shutil.rmtree(repo / leftover) if (repo / leftover).is_dir() else (repo / leftover).unlink()


def test_impossible_n_way_is_one_line_and_writes_nothing(project):
    repo, env = project["repo"], project["env"]
    before = file_hash(repo / "data/episodes/test.parquet")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    bad = repo / "bad_params"
    bad.mkdir()
    (bad / "params.yaml").write_text(yaml.safe_dump(params | {"n_way": 10}))
    shutil.copytree(repo / "data", bad / "data", symlinks=True)
    done = sh([sys.executable, "-m", "fewshot.stages.episodes"], bad, env, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: n_way=10 is larger than the 6 classes of split 'val'"]
    assert file_hash(bad / "data/episodes/test.parquet") == before


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
    assert ran == {"check", "episodes", "report"} | PER_MODEL  # evaluate records the shots it scored
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout


def test_more_test_episodes_rerun_evaluate_and_retrain_nothing(project):
    """train@ reads the val episodes only: a longer test file must not retrain any model."""
    repo, env = project["repo"], project["env"]
    params = repo / "params.yaml"
    original = params.read_text()
    before = file_hash(repo / "data/episodes/test.parquet")
    more = yaml.safe_load(original)
    more["episodes"]["test_episodes"] = 120
    params.write_text(yaml.safe_dump(more, sort_keys=False))
    try:
        done = sh(["dvc", "repro"], repo, env)
    finally:
        params.write_text(original)
    ran = {line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"check", "episodes", "report"} | {f"evaluate@{model}" for model in MODELS}
    assert json.loads((repo / "reports/metrics/protonet.json").read_text())["episodes"] == 120
    sh(["dvc", "repro"], repo, env)  # back to the committed params: the same episodes again
    assert file_hash(repo / "data/episodes/test.parquet") == before
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout


def test_any_edit_to_the_image_folder_makes_ingest_stale(project):
    """The folder is a DVC dependency of ingest: `dvc status` once said "up to date" after edits."""
    repo, env, folder = project["repo"], project["env"], project["folder"]

    def stale() -> bool:
        out = sh(["dvc", "status", "ingest"], repo, env).stdout
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
    evil["models"][f"x;touch {marker};exit 0;"] = {"method": "protonet"}
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


def test_a_model_predicts_as_evaluated_whatever_the_checkouts_params_say(project):
    """A trained model is self-contained: with params.yaml changed to another image size and other
    templates (not reproduced), fewshot-predict on a test episode's own files gives evaluate's
    per-episode accuracy and mean confidence (raw, T=1), for an image model and a text model."""
    repo, env = project["repo"], project["env"]
    items = pd.read_parquet(repo / "data/curated/items.parquet").set_index("item_id")
    classes = pd.read_parquet(repo / "data/curated/classes.parquet").set_index("class_id")
    table = pd.read_parquet(repo / "data/episodes/test.parquet")
    params = repo / "params.yaml"
    original = params.read_text()
    other = yaml.safe_load(original)
    other["modality"]["image"]["size"] = 64
    other["embed"]["text_templates"] = ["{name}", "a photo of {name}"]
    params.write_text(yaml.safe_dump(other, sort_keys=False))
    predict = str(Path(sys.executable).parent / "fewshot-predict")
    try:
        for model, source in (("protonet", "--support"), ("zero_shot", "--classes")):
            expected = pd.read_csv(repo / f"reports/plots/{model}/episodes.csv")
            for episode in range(3):
                rows = table[table["episode_id"] == episode]
                work = repo / "episode_files"
                shutil.rmtree(work, ignore_errors=True)
                truth = {}
                for row in rows.itertuples():
                    if row.role == "support":
                        (work / "support" / row.class_id).mkdir(parents=True, exist_ok=True)
                        (work / "support" / row.class_id / f"{row.Index}.png").write_bytes(
                            items.loc[row.item_id, "content"])
                    else:
                        query = work / f"q{row.Index}.png"
                        query.write_bytes(items.loc[row.item_id, "content"])
                        truth[str(query)] = classes.loc[row.class_id, "class_name"]
                episode_classes = classes.loc[sorted(rows["class_id"].unique())]
                episode_classes.to_csv(work / "classes.csv", index=False)
                given = work / "support" if source == "--support" else work / "classes.csv"
                sh([predict, "--model", model, source, str(given), "--temperature", "1",
                    "--json", str(work / "a.json"), *truth], repo, env)
                answers = json.loads((work / "a.json").read_text())["answers"]
                accuracy = sum(a["top_class"] == truth[a["query"]] for a in answers) / len(answers)
                confidence = sum(a["probability"] for a in answers) / len(answers)
                assert accuracy == expected.loc[episode, "accuracy"], (model, episode)
                assert confidence == pytest.approx(expected.loc[episode, "mean_confidence"], abs=1e-4)
    finally:
        params.write_text(original)
        shutil.rmtree(repo / "episode_files", ignore_errors=True)
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout
