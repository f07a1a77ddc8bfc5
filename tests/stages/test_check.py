"""The `check` stage: params that are typed right but do not fit together fail with one line."""

from pathlib import Path

import pytest
import yaml

from fewshot.core import params
from fewshot.core.errors import UserError
from fewshot.stages.check import check


def with_models(models: dict, **sections) -> params.Params:
    return params.from_dict({"models": models, **sections})


def test_repository_params_pass():
    check(params.load("params.yaml"))


def test_misspelled_method_option_names_model_and_valid_options():
    bad = with_models({"s": {"method": "siamese", "options": {"margn": 1}}})
    with pytest.raises(UserError, match=r"unknown params key 'models.s.options.margn'; valid keys: loss"):
        check(bad)


def test_unknown_method_and_backbone_list_the_valid_names():
    with pytest.raises(UserError, match=r"unknown method 'protonett'; valid names: .*protonet"):
        check(with_models({"p": {"method": "protonett"}}))
    with pytest.raises(UserError, match=r"unknown backbone 'resnet'; valid names: conv4"):
        check(with_models({"p": {"method": "protonet", "backbone": "resnet"}}))


def test_frozen_backbone_must_be_cached_by_embed():
    bad = with_models({"p": {"method": "protonet", "backbone": "mobilenet_v2"}},
                      embed={"backbones": ["efficientnet_lite0"]})
    with pytest.raises(UserError, match=r"models.p uses frozen backbone 'mobilenet_v2'.*add it there"):
        check(bad)
    fine_tuned = with_models({"p": {"method": "protonet", "backbone": "mobilenet_v2", "freeze": False}},
                             embed={"backbones": ["efficientnet_lite0"]})
    check(fine_tuned)


def test_empty_models_and_negative_episodes_are_rejected():
    with pytest.raises(UserError, match="'models' is empty"):
        check(with_models({}))
    with pytest.raises(UserError, match=r"models.p: episodes=-1 must be >= 0"):
        check(with_models({"p": {"method": "protonet", "episodes": -1}}))


def test_a_models_key_that_a_shell_would_read_is_refused():
    """dvc.yaml puts the key into `train@<key>`'s shell command: it must be a plain name."""
    for key in ("x;touch /tmp/INJECTED;exit 0;", "a b", "$(id)", "`id`", "a|b", "../x"):
        with pytest.raises(UserError, match=r"params 'models' key .* is not a valid name; expected "
                                            "letters, digits, '_' and '-' only"):
            with_models({key: {"method": "protonet"}})
    with_models({"Proto-net_2": {"method": "protonet"}})


@pytest.mark.parametrize("options, message", [
    ({"method": "protonet", "options": {"distance": "manhattan"}}, "distance 'manhattan' is not one of"),
    ({"method": "siamese", "options": {"loss": "triplet"}}, "loss 'triplet' must be contrastive"),
    ({"method": "siamese", "options": {"margin": 0}}, "margin 0.0 > 0"),
    ({"method": "zero_shot", "options": {"dropout": 1.5}}, "dropout 1.5 in"),
    ({"method": "multimodal", "options": {"image_weight": 1.0}}, "image_weight 1.0 must be in"),
    ({"method": "conse", "options": {"top_k": 0}}, "top_k 0 must be in 1..1000"),
])
def test_every_methods_own_option_rules_run_in_check(options, message):
    """`distance: manhattan` once passed check and failed in train@ after DVC deleted the model."""
    with pytest.raises(UserError, match=rf"params 'models.m.options': .*{message}"):
        check(with_models({"m": options}))


def test_no_train_stage_can_run_before_check_passed():
    stages = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]
    assert stages["check"]["outs"] == [{"reports/check.json": {"cache": False, "persist": True}}]
    assert "reports/check.json" in stages["train"]["do"]["deps"]


@pytest.mark.parametrize("entry, message", [
    ({"method": "protonet", "head_dim": -3}, "head_dim -3 must be >= 0"),
    ({"method": "zero_shot", "head_dim": 0}, "zero-shot needs head_dim > 0"),
    ({"method": "multimodal", "head_dim": 0}, "zero-shot needs head_dim > 0"),
    ({"method": "conse", "backbone": "conv4"}, "conse needs a pretrained backbone"),
])
def test_entries_a_method_cannot_be_built_from_fail_in_check(entry, message):
    with pytest.raises(UserError, match=rf"models.m: {message}"):
        check(with_models({"m": entry}))
    check(with_models({"m": {"method": "zero_shot", "head_dim": 0,
                             "options": {"text_projection": False}}}))
