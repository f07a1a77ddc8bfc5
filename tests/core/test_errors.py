"""Tests of one-line errors and stage --help."""
import sys

import pytest

from fewshot.core.errors import UserError, one_line_errors


def raises_user_error():
    raise UserError("n_way=9 is larger than the 3 classes of split 'test'")


def test_user_error_becomes_one_line_and_exit_status_2(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["stage"])
    with pytest.raises(SystemExit) as exit_info:
        one_line_errors(raises_user_error)()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: n_way=9 is larger than the 3 classes of split 'test'\n"


def test_help_prints_the_module_docstring_without_running(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["stage", "--help"])
    one_line_errors(raises_user_error)()
    assert "one-line errors" in capsys.readouterr().out


def test_other_exceptions_are_not_hidden(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["stage"])
    with pytest.raises(ZeroDivisionError):
        one_line_errors(lambda: 1 / 0)()
