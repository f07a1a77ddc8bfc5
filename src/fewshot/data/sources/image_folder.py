"""Your own images: one sub-folder per class, optional `classes.csv` with descriptions
(the layout of `fewshot.data.class_folders`).

Each image file is its own group (its file name without the suffix), so support and query images
are always different files. A class's name is its folder's name with `_` read as a space, here and
in `fewshot-predict --support`, so text models see the same names in training and prediction. DVC
tracks the folder itself as a dependency of `ingest` (dvc.yaml), so any added, removed or changed
file makes `dvc status` / `dvc repro` see the change.

`ingest_folder` is the same for any modality: a source for a user's folder of another kind of data
registers it with that modality's name.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from fewshot.core.errors import UserError
from fewshot.core.progress import progress
from fewshot.data.class_folders import class_folders, class_name, class_row, described, files_of
from fewshot.data.sources import MANIFEST_COLUMNS, register
from fewshot.modalities import modality_of


@register("image_folder", modality="image")
def ingest_image_folder(raw_dir: Path, folder: str, **_: object) -> pd.DataFrame:
    """Check the folder, copy its images into `raw_dir`, describe them in the manifest."""
    return ingest_folder(raw_dir, folder, "image")


def ingest_folder(raw_dir: Path, folder: str, modality_name: str) -> pd.DataFrame:
    """Copy every file of `modality_name`'s kinds from the class folders of `folder` into `raw_dir`."""
    modality = modality_of(modality_name)
    root = Path(folder).expanduser()
    classes = described(root / "classes.csv") if root.is_dir() else {}
    rows = []
    for class_dir in progress(class_folders(root, f"{modality.name} folder"), "copy classes"):
        files = files_of(class_dir, modality.suffixes)
        if not files:
            kinds = ", ".join(sorted(modality.suffixes))
            raise UserError(f"class folder '{class_dir}' holds no {modality.name} files ({kinds})")
        for file in files:
            _raise_if_name_is_not_text(file)
        _raise_if_names_collide(files)
        info = class_row(classes, class_dir.name)
        for file in files:
            modality.verify(file)
            rel = Path(modality.name) / class_dir.name / file.name
            (raw_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, raw_dir / rel)
            rows.append({"class_id": class_dir.name, "class_name": class_name(class_dir.name),
                         "description": info.get("description") or "",
                         "category": info.get("category") or "",
                         "subcategory": info.get("subcategory") or "",
                         "group": file.stem, "path": rel.as_posix()})
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def _raise_if_name_is_not_text(file: Path) -> None:
    """Bytes a file system takes but that are no UTF-8 text cannot be stored as a name."""
    try:
        file.name.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"file name {file.name!r} in '{file.parent}' is not valid UTF-8; "
                        "rename it") from None


def _raise_if_names_collide(files: list[Path]) -> None:
    """Two files of a class with one name but different suffixes would be one item (one group)."""
    by_stem: dict[str, list[str]] = {}
    for file in files:
        by_stem.setdefault(file.stem, []).append(file.name)
    clashes = [names for names in by_stem.values() if len(names) > 1]
    if clashes:
        raise UserError(f"class folder '{files[0].parent}' has files that differ only in their "
                        f"suffix: {', '.join(clashes[0])}; rename one (an item is named by its "
                        "file name without the suffix)")
