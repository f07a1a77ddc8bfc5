import dataclasses

import pytest
import yaml

from fewshot.core import params
from fewshot.core.errors import UserError
from tests.conftest import ROOT, repo_params


def test_repository_params_file_parses_with_every_section():
    loaded = params.load(ROOT / "params.yaml")
    assert loaded.n_way >= 2 and loaded.train.val_every >= 1 and loaded.models
    assert all(entry.method and entry.episodes >= 0 for entry in loaded.models.values())


def test_models_entries_take_what_they_leave_out_from_model_defaults():
    loaded = repo_params({"mine": {"method": "siamese", "head_dim": 8}},
                         model_defaults={"episodes": 77})
    assert loaded.models["mine"].head_dim == 8 and loaded.models["mine"].episodes == 77
    with pytest.raises(UserError, match=r"unknown params key 'models.mine.head_size'; valid keys: domain"):
        repo_params({"mine": {"method": "siamese", "head_size": 8}})
    with pytest.raises(UserError, match=r"'models.mine' lacks required key\(s\) method"):
        repo_params({"mine": {"head_dim": 8}})
    with pytest.raises(UserError, match=r"train_n_query=-1 must be >= 0 \(0 = the domain's n_query\)"):
        repo_params({"mine": {"method": "siamese", "train_n_query": -1}})


def test_every_value_lives_in_params_yaml_a_missing_key_is_named():
    """No defaults in code: a key left out of params.yaml is an error, not a silent fallback."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    del raw["domains"]["images"]["embed"]["text_templates"]
    with pytest.raises(UserError, match=r"params section 'domains.images.embed' lacks required "
                                        r"key\(s\) text_templates"):
        params.from_dict(raw)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    del raw["model_defaults"]["lr"]
    with pytest.raises(UserError, match=r"params section 'models.protonet' lacks required key\(s\) lr"):
        params.from_dict(raw)
    schema = [params.Params, params.Domain, params.Curate, params.Episodes, params.Embed, params.Model,
              params.Train, params.Evaluate, params.Tracking, params.Gate]
    assert [f"{cls.__name__}.{f.name}" for cls in schema for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING] == []


def test_section_flattens_nested_model_options():
    loaded = repo_params({"s": {"method": "siamese", "options": {"margin": 0.5}}})
    flat = params.section(loaded, "models.s")
    assert flat["models.s.method"] == "siamese" and flat["models.s.options.margin"] == 0.5


def test_unknown_top_level_key_names_the_valid_keys():
    with pytest.raises(UserError, match=r"unknown params key 'n_shots'; valid keys: seed, n_way"):
        params.from_dict({"n_shots": 5})


def test_misspelled_nested_key_names_section_and_valid_keys():
    with pytest.raises(UserError, match=r"unknown params key 'train.lrate'; valid keys: .*\bval_every\b"):
        params.from_dict({"train": {"lrate": 0.1}})  # valid: weight_decay, val_every, ...


def test_wrong_type_names_key_value_and_expected_type():
    with pytest.raises(UserError, match=r"params key 'n_way' = 'five' has the wrong type; expected int"):
        params.from_dict({"n_way": "five"})


def test_int_is_accepted_where_float_is_expected_and_bool_is_not_an_int():
    assert repo_params(train={"weight_decay": 1}).train.weight_decay == 1.0
    with pytest.raises(UserError, match="n_shot"):
        repo_params(n_shot=True)


def test_missing_params_file_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="params file .* not found"):
        params.load(tmp_path / "params.yaml")


def test_section_flattens_for_logging():
    loaded = repo_params(n_shot=3, domains={"images": {"episodes": {"val_episodes": 30,
                                                                    "test_episodes": 90}}})
    flat = params.section(loaded, "n_shot", "domains.images.episodes")
    assert flat == {"n_shot": 3, "domains.images.episodes.val_episodes": 30,
                    "domains.images.episodes.test_episodes": 90}


def test_a_domain_key_must_be_a_plain_name_and_domains_not_empty():
    """A domain's key becomes a stage name (ingest@<domain>) and a folder (data/<domain>)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    with pytest.raises(UserError, match=r"params 'domains' key '../x' is not a valid name"):
        params.from_dict(raw | {"domains": {"../x": raw["domains"]["images"]}})
    with pytest.raises(UserError, match=r"params 'domains' is empty"):
        params.from_dict(raw | {"domains": {}})
