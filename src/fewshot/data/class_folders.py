"""Folders of classes, the layout of a user's own data and of a support set:

```
folder/
  classes.csv          # optional: class_name[,description,category,subcategory]
  cat/  1.jpg 2.png ...
  dog/  a.jpg ...
```
One walker (`class_folders`, `files_of`), one classes.csv reader (`read_class_table`) and one
naming rule (`class_name`) for ingest and for fewshot-predict, so a class is named and described
the same way in training and in prediction.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fewshot.core.errors import UserError

FIELDS = ["class_name", "description", "category", "subcategory"]


def class_folders(root: Path, what: str = "folder") -> list[Path]:
    """The class sub-folders of `root`, sorted (hidden ones left out).

    Raises:
        UserError: `root` is not a folder or has no class sub-folders.
    """
    if not root.is_dir():
        raise UserError(f"{what} '{root}' does not exist; expected a folder with one sub-folder per class")
    found = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise UserError(f"{what} '{root}' has no class sub-folders; expected <folder>/<class>/<files>")
    return found


def files_of(class_dir: Path, suffixes: frozenset[str] | None = None) -> list[Path]:
    """The files of one class folder, sorted; only those with `suffixes` when given."""
    return sorted(p for p in class_dir.iterdir() if p.is_file() and not p.name.startswith(".")
                  and (suffixes is None or p.suffix.lower() in suffixes))


def class_name(folder_name: str) -> str:
    """The class name a folder stands for: `_` read as a space.

    >>> class_name("digit_4")
    'digit 4'
    """
    return folder_name.replace("_", " ")


def read_class_table(path: Path) -> pd.DataFrame:
    """The classes of a CSV with a `class_name` header (and optionally description, category,
    subcategory), or of a file with one class name per line; every field a string ("" if absent).

    Raises:
        UserError: the file is missing, empty, or lists a class twice.
    """
    if not path.is_file():
        raise UserError(f"classes file '{path}' does not exist; expected a CSV with a class_name "
                        "column (and optionally description) or one class name per line")
    text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Excel's "CSV UTF-8") is not text
    first = text.splitlines()[0].strip() if text.strip() else ""
    if first.split(",")[0].strip() == "class_name":
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    else:
        table = pd.DataFrame({"class_name": [line.strip() for line in text.splitlines() if line.strip()]})
    for column in FIELDS:
        if column not in table:
            table[column] = ""
    table = table[FIELDS]
    if table.empty:
        raise UserError(f"classes file '{path}' lists no classes")
    duplicated = sorted(table.loc[table["class_name"].duplicated(), "class_name"])
    if duplicated:
        raise UserError(f"classes file '{path}' lists {duplicated} more than once")
    return table.reset_index(drop=True)


def described(path: Path) -> dict[str, dict]:
    """{class_name: row} of a classes file, {} when there is none."""
    if not path.is_file():
        return {}
    return {row["class_name"]: row for row in read_class_table(path).to_dict("records")}


def class_row(table: dict, folder_name: str) -> dict:
    """The classes-file row of a class folder, whether it names it `digit_4` or `digit 4`; {} if none."""
    return table.get(folder_name) or table.get(class_name(folder_name)) or {}
