"""Presets and sweeps under pipelines/ turn into valid `dvc exp run -S` overrides."""


import pytest
import yaml

from fewshot.core.errors import UserError
from fewshot.tools import experiments, queue_workers
from tests.conftest import ROOT

PIPELINES = ROOT / "pipelines"


@pytest.mark.parametrize("preset", sorted(p.stem for p in PIPELINES.glob("*.yaml")
                                          if not p.stem.startswith("sweep_")))
def test_every_preset_merges_into_valid_params(preset, monkeypatch):
    monkeypatch.chdir(PIPELINES.parent)
    assert experiments.overrides(experiments.load_preset(preset))


@pytest.mark.parametrize("sweep", sorted(PIPELINES.glob("sweep_*.yaml")))
def test_every_sweep_has_a_grid_and_a_known_preset(sweep, monkeypatch):
    monkeypatch.chdir(PIPELINES.parent)
    spec = yaml.safe_load(sweep.read_text())
    assert len(experiments.grid_points(spec)) >= 4
    if spec.get("preset"):
        experiments.load_preset(spec["preset"])


def test_preset_with_a_typo_is_rejected_before_anything_is_queued(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "bad.yaml").write_text("train:\n  val_evry: 3\n")
    with pytest.raises(UserError, match="unknown params key 'train.val_evry'"):
        experiments.load_preset("bad", tmp_path / "pipelines")


def test_overrides_round_trip_through_yaml_like_dvc_parses_them():
    preset = {"n_shot": 5, "models": {"m": {"method": "protonet", "freeze": False, "lr": 3e-4}}}
    parsed = {}
    for item in experiments.overrides(preset):  # no base: no `+` prefixes
        key, value = item.split("=", 1)
        parsed[key] = yaml.safe_load(value)
    assert parsed == {"n_shot": 5, "models.m.method": "protonet", "models.m.freeze": False,
                      "models.m.lr": 3e-4}


def test_grid_without_lists_is_rejected():
    with pytest.raises(UserError, match="a sweep needs 'grid'"):
        experiments.grid_points({"grid": {"n_way": 5}})


def test_keys_missing_from_params_get_dvcs_append_prefix(monkeypatch):
    monkeypatch.chdir(PIPELINES.parent)
    flags = experiments.overrides(experiments.load_preset("backbones"), experiments._base())
    assert '+models.protonet_conv4.backbone="conv4"' in flags
    assert '+models.lc_pretrained_prototype.pretrain_steps=1000' in flags
    added = ("protonet_conv4", "protonet_finetuned", "lc_protonet_transformer",
             "lc_protonet_pretrained", "lc_pretrained_prototype")
    assert all(flag.startswith(tuple(f"+models.{name}." for name in added)) for flag in flags)


def test_a_queue_worker_left_up_after_the_queue_ended_is_stopped_and_nothing_else(tmp_path, monkeypatch):
    """dvc-task can leave a worker up, deaf to `dvc queue stop`, after its last task succeeded (the
    hang seen in a 2-worker sweep): the sweep stops it (SIGTERM, then SIGKILL); a stale pid file
    naming another process kills nothing."""
    import os
    import subprocess
    import sys

    deaf = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                             "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)",
                             "queue-worker"])
    folder = tmp_path / queue_workers.WORKERS
    folder.mkdir(parents=True)
    (folder / "dvc-exp-worker-1.pid").write_text(f"{deaf.pid}\n")
    (folder / "dvc-exp-worker-2.pid").write_text(f"{os.getpid()}\n")  # not a worker: left alone
    monkeypatch.chdir(tmp_path)
    try:
        queue_workers.stop_idle_workers(grace_s=1.0)
        assert deaf.wait(timeout=10) == -9  # SIGTERM ignored, so SIGKILL
    finally:
        deaf.kill()
