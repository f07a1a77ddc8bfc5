"""The README offers only ways of running that work."""

import re

from tests.conftest import ROOT


def test_readme_does_not_offer_running_dvc_through_the_venv_prefix():
    """Stages run `python -m fewshot...` from PATH, so `.venv/bin/dvc repro` without activating
    failed with `No module named 'fewshot'` while the README offered exactly that."""
    readme = (ROOT / "README.md").read_text()
    assert not re.search(r"prefix commands with `\.venv/bin/`\.?\s*$", readme, re.MULTILINE)
    prose = " ".join(readme.split())
    assert ".venv/bin/dvc repro` without activating fails" in prose
    assert "PATH=$PWD/.venv/bin:$PATH dvc repro" in prose  # the way that works (tests run so)


def test_failure_behaviour_table_is_linked_from_the_readme():
    assert "docs/failure-behaviour.md" in (ROOT / "README.md").read_text()
    assert (ROOT / "docs" / "failure-behaviour.md").is_file()
