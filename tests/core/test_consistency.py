"""Rules across params sections (run by `params.load`, hence by every stage and the `check` stage):
params that are typed right but do not fit together fail with one line."""

from pathlib import Path

import pytest
import yaml

from fewshot.core import params
from fewshot.core.consistency import check
from fewshot.core.errors import UserError
from tests.conftest import ROOT, repo_params


def test_repository_params_pass():
    check(params.load(ROOT / "params.yaml"))


def test_misspelled_method_option_names_model_and_valid_options():
    bad = repo_params({"s": {"method": "siamese", "options": {"margn": 1}}})
    with pytest.raises(UserError, match=r"unknown params key 'models.s.options.margn'; valid keys: loss"):
        check(bad)


def test_unknown_method_and_backbone_list_the_valid_names():
    with pytest.raises(UserError, match=r"unknown method 'protonett'; valid names: .*protonet"):
        check(repo_params({"p": {"method": "protonett"}}))
    with pytest.raises(UserError, match=r"unknown backbone 'resnet'; valid names: conv4"):
        check(repo_params({"p": {"method": "protonet", "backbone": "resnet"}}))


def test_frozen_backbone_must_be_cached_by_embed():
    only_lite = {"images": {"embed": {"backbones": ["efficientnet_lite0"]}}}
    bad = repo_params({"p": {"method": "protonet", "backbone": "mobilenet_v2"}}, domains=only_lite)
    with pytest.raises(UserError, match=r"models.p uses frozen backbone 'mobilenet_v2', which "
                                        r"domains.images.embed.backbones .*add it there"):
        check(bad)
    fine_tuned = repo_params({"p": {"method": "protonet", "backbone": "mobilenet_v2", "freeze": False}},
                             domains=only_lite)
    check(fine_tuned)


def test_embed_refuses_a_backbone_trained_from_scratch_or_of_another_kind():
    with pytest.raises(UserError, match=r"domains.images.embed.backbones lists 'conv4', which is "
                                        "trained from scratch"):
        check(repo_params(domains={"images": {"embed": {"backbones": ["efficientnet_lite0", "conv4"]}}}))
    with pytest.raises(UserError, match=r"domains.light_curves.embed.backbones lists 'mobilenet_v2': "
                                        "backbone 'mobilenet_v2' encodes image data but its domain's "
                                        "source gives light_curve data; choose one of lc_cnn"):
        check(repo_params(domains={"light_curves": {"embed": {"backbones": ["mobilenet_v2"]}}}))


def test_a_domain_needs_its_sources_settings_and_every_model_a_known_domain():
    with pytest.raises(UserError, match=r"unknown params key 'domains.images.settings.sise'; valid "
                                        "keys: size"):
        check(repo_params(domains={"images": {"settings": {"sise": 64}}}))
    with pytest.raises(UserError, match=r"size 8 must be between 16 and 1024"):
        check(repo_params(domains={"images": {"settings": {"size": 8}}}))
    with pytest.raises(UserError, match=r"unknown params key 'domains.light_curves.settings.size'"):
        check(repo_params(domains={"light_curves": {"settings": {"size": 64}}}))
    with pytest.raises(UserError, match=r"models.p names domain 'sounds', which params 'domains' does "
                                        r"not have \(images, light_curves\); remove the model or add"):
        check(repo_params({"p": {"domain": "sounds", "method": "protonet"}}))
    with pytest.raises(UserError, match=r"models.p: backbone 'lc_cnn' encodes light_curve data but its "
                                        "domain's source gives image data"):
        check(repo_params({"p": {"domain": "images", "method": "protonet", "backbone": "lc_cnn"}}))
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    with pytest.raises(UserError, match=r"model_defaults sets 'domain'"):
        check(params.from_dict(raw | {"model_defaults": raw["model_defaults"] | {"domain": "images"}}))


def test_empty_models_and_out_of_range_values_are_rejected_by_the_types():
    with pytest.raises(UserError, match="'models' is empty"):
        repo_params({})
    with pytest.raises(UserError, match=r"params 'models.p': episodes=-1 must be >= 0"):
        repo_params({"p": {"method": "protonet", "episodes": -1}})
    with pytest.raises(UserError, match=r"params 'domains.images.curate': val_fraction=0.6 and "
                                        "test_fraction=0.5"):
        repo_params(domains={"images": {"curate": {"val_fraction": 0.6, "test_fraction": 0.5}}})
    with pytest.raises(UserError, match=r"params 'domains.light_curves.curate': val_split 'objects' "
                                        "must be classes or groups"):
        repo_params(domains={"light_curves": {"curate": {"val_split": "objects"}}})
    with pytest.raises(UserError, match=r"params 'train': .*val_every=0"):
        repo_params(train={"val_every": 0})


def test_a_models_key_that_a_shell_would_read_is_refused():
    """dvc.yaml puts the key into `train@<key>`'s shell command: it must be a plain name."""
    for key in ("x;touch /tmp/INJECTED;exit 0;", "a b", "$(id)", "`id`", "a|b", "../x"):
        with pytest.raises(UserError, match=r"params 'models' key .* is not a valid name; expected "
                                            "letters, digits, '_' and '-' only"):
            repo_params({key: {"method": "protonet"}})
    repo_params({"Proto-net_2": {"method": "protonet"}})


@pytest.mark.parametrize("options, message", [
    ({"method": "protonet", "options": {"distance": "manhattan"}}, "distance 'manhattan' is not one of"),
    ({"method": "siamese", "options": {"loss": "triplet"}}, "loss 'triplet' must be contrastive"),
    ({"method": "siamese", "options": {"margin": 0}}, "margin 0.0 must be > 0"),
    ({"method": "siamese", "options": {"loss": "binary", "margin": 1.0}},
     "margin 1.0 applies to the contrastive loss only"),
    ({"method": "zero_shot", "options": {"dropout": 1.5}}, "dropout 1.5 in"),
    ({"method": "multimodal", "options": {"image_weight": 1.0}}, "image_weight 1.0 must be in"),
    ({"method": "conse", "options": {"top_k": 0}}, "top_k 0 must be in 1..1000"),
])
def test_every_methods_own_option_rules_run_in_check(options, message):
    """`distance: manhattan` once passed check and failed in train@ after DVC deleted the model."""
    with pytest.raises(UserError, match=rf"params 'models.m.options': .*{message}"):
        check(repo_params({"m": options}))


def test_an_option_of_another_method_is_refused_not_ignored():
    """zero_shot once took (and ignored) multimodal's image_weight."""
    with pytest.raises(UserError, match=r"unknown params key 'models.z.options.image_weight'"):
        check(repo_params({"z": {"method": "zero_shot", "options": {"image_weight": 0.3}}}))
    check(repo_params({"m": {"method": "multimodal", "options": {"image_weight": 0.3}}}))


def test_no_train_stage_can_run_before_check_passed():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["check"]["outs"] == [{"reports/check.json": {"cache": False, "persist": True}}]
    assert "reports/check.json" in stages["train"]["do"]["deps"]


@pytest.mark.parametrize("entry, message", [
    ({"method": "zero_shot", "head_dim": 0}, "zero-shot needs head_dim > 0"),
    ({"method": "multimodal", "head_dim": 0}, "zero-shot needs head_dim > 0"),
    ({"method": "conse", "backbone": "conv4"}, "conse needs a pretrained backbone"),
])
def test_entries_a_method_cannot_be_built_from_fail_in_check(entry, message):
    with pytest.raises(UserError, match=rf"models.m: {message}"):
        check(repo_params({"m": entry}))
    check(repo_params({"m": {"method": "zero_shot", "head_dim": 0,
                             "options": {"text_projection": False}}}))


def test_pretraining_needs_a_backbone_that_trains():
    with pytest.raises(UserError, match=r"models.m sets pretrain_steps=100 on frozen backbone "
                                        "'efficientnet_lite0'"):
        check(repo_params({"m": {"method": "protonet", "pretrain_steps": 100}}))
    with pytest.raises(UserError, match=r"pretrain_steps=-1 must be >= 0"):
        repo_params({"m": {"method": "protonet", "backbone": "conv4", "pretrain_steps": -1}})
    check(repo_params({"m": {"method": "protonet", "backbone": "conv4", "pretrain_steps": 100}}))
    check(repo_params({"m": {"method": "protonet", "freeze": False, "pretrain_steps": 100}}))


def test_the_check_stage_writes_its_stamp_only_for_valid_params(tmp_path, monkeypatch):
    from fewshot.stages import check as stage

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    stage.main()
    assert (tmp_path / "reports/check.json").read_text() == '{\n  "params.yaml": "valid"\n}\n'
    (tmp_path / "reports/check.json").unlink()
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text() + "trian: {}\n")
    with pytest.raises(SystemExit):
        stage.main()
    assert not Path("reports/check.json").exists()
