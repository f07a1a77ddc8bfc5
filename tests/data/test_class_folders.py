"""Folders of classes (`fewshot.data.class_folders`): the classes.csv reader, the folder walker and
how a folder finds its row, shared by ingest and fewshot-predict."""

from __future__ import annotations

import pytest

from fewshot.core.errors import UserError
from fewshot.data.class_folders import FIELDS, class_folders, class_row, described, files_of, read_class_table


def test_csv_with_header_keeps_known_columns_and_fills_missing_ones(tmp_path):
    """Known columns in FIELDS order, an unknown column dropped, an absent one "" (not NaN), and an
    empty cell "" too."""
    path = tmp_path / "classes.csv"
    path.write_text("class_name,colour,description\ncat,grey,a small cat\ndog,brown,\n")
    table = read_class_table(path)
    assert list(table.columns) == FIELDS
    assert table.to_dict("records") == [
        {"class_name": "cat", "description": "a small cat", "category": "", "subcategory": ""},
        {"class_name": "dog", "description": "", "category": "", "subcategory": ""},
    ]


def test_one_name_per_line_ignores_blank_lines_and_whitespace(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("  red apple \n\nbanana\n")
    table = read_class_table(path)
    assert list(table["class_name"]) == ["red apple", "banana"]
    assert (table[["description", "category", "subcategory"]] == "").all().all()


@pytest.mark.parametrize("text", ["cat\ndog\ncat\nbird\ndog\n", "class_name\ncat\ndog\ncat\ndog\n"])
def test_duplicate_names_are_refused_naming_them(tmp_path, text):
    path = tmp_path / "classes.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=r"lists \['cat', 'dog'\] more than once"):
        read_class_table(path)


@pytest.mark.parametrize("text", ["", "  \n\n", "class_name\n"])
def test_a_file_without_classes_is_refused(tmp_path, text):
    path = tmp_path / "classes.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=r"classes file '.*classes.csv' lists no classes"):
        read_class_table(path)


def test_missing_classes_file_is_refused_but_described_is_empty(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_class_table(tmp_path / "nope.csv")
    assert described(tmp_path / "nope.csv") == {}


def test_class_folders_are_sorted_and_skip_hidden_folders_and_files(tmp_path):
    for name in ("zebra", "ant", ".git", ".cache"):
        (tmp_path / name).mkdir()
    (tmp_path / "classes.csv").write_text("class_name\nant\n")
    assert class_folders(tmp_path) == [tmp_path / "ant", tmp_path / "zebra"]


def test_a_folder_without_class_sub_folders_is_refused(tmp_path):
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "loose.png").write_bytes(b"x")
    with pytest.raises(UserError, match=r"support set '.*' has no class sub-folders"):
        class_folders(tmp_path, what="support set")
    with pytest.raises(UserError, match="does not exist"):
        class_folders(tmp_path / "absent")


def test_files_of_filters_by_suffix_case_insensitively_and_skips_hidden(tmp_path):
    for name in ("b.PNG", "a.jpg", "notes.txt", ".DS_Store", ".x.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()  # a folder, even with an image suffix, is not a file
    assert files_of(tmp_path, frozenset({".png", ".jpg"})) == [tmp_path / "a.jpg", tmp_path / "b.PNG"]
    assert files_of(tmp_path) == [tmp_path / "a.jpg", tmp_path / "b.PNG", tmp_path / "notes.txt"]


def test_class_row_matches_the_folder_name_or_its_class_name(tmp_path):
    """A folder `digit_4` finds the row `digit 4` (underscore read as a space) and an exact row wins."""
    path = tmp_path / "classes.csv"
    path.write_text("class_name,description\ndigit 4,four\nred_apple,exact\nred apple,spaced\n")
    table = described(path)
    assert class_row(table, "digit_4")["description"] == "four"
    assert class_row(table, "digit 4")["description"] == "four"
    assert class_row(table, "red_apple")["description"] == "exact"
    assert class_row(table, "digit_5") == {}


def test_a_byte_order_mark_is_not_part_of_the_header(tmp_path):
    """Excel's "CSV UTF-8" starts with a BOM; it was once read as a class name."""
    path = tmp_path / "classes.csv"
    path.write_bytes("\ufeffclass_name,description\r\ncat,a cat\r\n".encode())
    table = read_class_table(path)
    assert table["class_name"].tolist() == ["cat"] and table["description"].tolist() == ["a cat"]
