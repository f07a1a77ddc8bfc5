"""The `check` stage: params that are typed right but do not fit together fail with one line."""

import pytest

from fewshot import params
from fewshot.errors import UserError
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
