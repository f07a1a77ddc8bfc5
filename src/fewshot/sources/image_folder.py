"""Your own data: one sub-folder per class, optional `classes.csv` with descriptions.

```
my_data/
  classes.csv          # optional: class_name,description[,category,subcategory]
  cat/  1.jpg 2.png ...
  dog/  a.jpg ...
```
Each image counts as its own design (its file name without the suffix), so support and query
images are always different files. A class's name is its folder's name with `_` read as a space
(`class_name`), here and in `fewshot-predict --support`, so text models see the same names in
training and prediction. DVC tracks the folder itself as a dependency of `ingest` (dvc.yaml), so any
added, removed or changed file makes `dvc status` / `dvc repro` see the change.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

from fewshot.errors import UserError
from fewshot.progress import progress
from fewshot.sources import MANIFEST_COLUMNS, SOURCES

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".svg"}


@SOURCES.register("image_folder")
def ingest_image_folder(raw_dir: Path, image_folder: str | None = None, **_: object) -> pd.DataFrame:
    """Check the folder, copy its images into `raw_dir`, describe them in the manifest."""
    root = _existing_folder(image_folder)
    described = _read_class_table(root)
    rows = []
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise UserError(f"image folder '{root}' has no class sub-folders; expected <folder>/<class>/<images>")
    for class_dir in progress(class_dirs, "copy classes"):
        images = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            kinds = ", ".join(sorted(IMAGE_SUFFIXES))
            raise UserError(f"class folder '{class_dir}' holds no images ({kinds})")
        for image in images:
            _raise_if_name_is_not_text(image)
        _raise_if_names_collide(images)
        info = class_row(described, class_dir.name) or {}
        for image in images:
            _raise_if_unreadable(image)
            rel = Path("images") / class_dir.name / image.name
            (raw_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, raw_dir / rel)
            rows.append({
                "class_id": class_dir.name,
                "class_name": class_name(class_dir.name),
                "description": info.get("description") or "",
                "category": info.get("category") or "",
                "subcategory": info.get("subcategory") or "",
                "design": image.stem,
                "path": rel.as_posix(),
            })
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def class_name(folder_name: str) -> str:
    """The class name a folder stands for: `_` read as a space.

    >>> class_name("digit_4")
    'digit 4'
    """
    return folder_name.replace("_", " ")


def class_row(table: dict, folder_name: str):
    """A classes.csv row for a class folder, whether the file names it `digit_4` or `digit 4`."""
    return table.get(folder_name, table.get(class_name(folder_name)))


def _raise_if_name_is_not_text(image: Path) -> None:
    """Bytes a file system takes but that are no UTF-8 text cannot be stored as a name."""
    try:
        image.name.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"file name {image.name!r} in '{image.parent}' is not valid UTF-8; "
                        "rename it") from None


def _raise_if_names_collide(images: list[Path]) -> None:
    """Two files of a class with one name but different suffixes would be one item (one design)."""
    by_stem: dict[str, list[str]] = {}
    for image in images:
        by_stem.setdefault(image.stem, []).append(image.name)
    clashes = [names for names in by_stem.values() if len(names) > 1]
    if clashes:
        raise UserError(f"class folder '{images[0].parent}' has files that differ only in their "
                        f"suffix: {', '.join(clashes[0])}; rename one (an item is named by its "
                        "file name without the suffix)")


def _existing_folder(image_folder: str | None) -> Path:
    if not image_folder:
        raise UserError("data.source is 'image_folder' but data.image_folder is not set; "
                        "expected a folder path")
    root = Path(image_folder).expanduser()
    if not root.is_dir():
        raise UserError(f"image folder '{root}' does not exist; "
                        "expected a folder with one sub-folder per class")
    return root


def _read_class_table(root: Path) -> dict[str, dict]:
    table = root / "classes.csv"
    if not table.exists():
        return {}
    frame = pd.read_csv(table, dtype=str).fillna("")
    if "class_name" not in frame.columns:
        raise UserError(f"'{table}' has columns {list(frame.columns)}; expected class_name,description")
    return {row["class_name"]: dict(row) for _, row in frame.iterrows()}


def _raise_if_unreadable(image: Path) -> None:
    if image.suffix.lower() == ".svg":
        return  # rendered (and checked) by curation
    try:
        with Image.open(image) as img:
            img.verify()
    except Image.DecompressionBombError as err:
        raise UserError(f"image '{image}' is too large to decode safely ({err}); expected an image "
                        "under Pillow's decompression-bomb limit") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise UserError(f"cannot read image '{image}': {err}") from None
