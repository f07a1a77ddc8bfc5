"""dvc.yaml's top-level plots cannot loop over `models`: they are generated, and must not drift."""

import pytest
import yaml

from fewshot.core.errors import UserError
from fewshot.tools import plots
from tests.conftest import ROOT


def test_dvc_yaml_plots_list_exactly_the_models_of_params_yaml():
    current, wanted = plots.expected(ROOT / "dvc.yaml", ROOT / "params.yaml")
    assert current == wanted, "run: python -m fewshot.tools.plots --write"
    models = list(yaml.safe_load((ROOT / "params.yaml").read_text())["models"])
    for entry in yaml.safe_load(current)["plots"][1:]:
        (spec,) = entry.values()
        assert [path.split("/")[2] for path in spec["y"]] == models


def test_a_model_added_to_params_is_seen_and_written(tmp_path):
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["models"]["extra"] = {"method": "protonet"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    current, wanted = plots.expected(tmp_path / "dvc.yaml", tmp_path / "params.yaml")
    assert current != wanted and "reports/plots/extra/episodes.csv: accuracy" in wanted
    assert plots.split(wanted)[0] == plots.split(current)[0]  # the stages are left alone


def test_a_dvc_yaml_without_the_marker_is_one_line():
    with pytest.raises(UserError, match="dvc.yaml has no '# Top-level plots' line"):
        plots.split("stages: {}\n")
