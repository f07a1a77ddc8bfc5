"""Support sets as versioned artefacts: the classes a model should recognise, with their examples.

A support set holds, per class, its name and description, the text embedding of its fields
(through the model's own templates), and the method inputs of its examples (backbone features for
a frozen backbone, else raw inputs), with each file's name and SHA-256. It is saved as one
safetensors file whose metadata records the model (name and checkpoint hash), backbone, modality
and settings that made it; loading it for another model is refused, since its features would mean
nothing there. Adding or removing classes needs no retraining and re-embeds only the new examples.

Folder layout (`fewshot.data.class_folders`, the same as a user's own data):

    support/
      classes.csv        # optional: class_name[,description,category,subcategory]
      cat/  1.jpg ...
      dog/  a.png ...
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from fewshot.core.errors import UserError
from fewshot.core.fileio import load_tensors, save_tensors
from fewshot.data.class_folders import class_folders, class_name, class_row, described, files_of
from fewshot.data.class_folders import read_class_table as read_classes
from fewshot.data.text import TextEncoder, class_embeddings
from fewshot.inference.trained import Trained

FORMAT = 1


@dataclass
class SupportSet:
    provenance: dict                 # Trained.provenance of the model that made it
    classes: list[str]
    descriptions: list[str]
    class_text: torch.Tensor         # (C, T) text embedding per class
    inputs: torch.Tensor             # (N, ...) method inputs of the example images
    labels: torch.Tensor             # (N,) index into `classes`
    items: list[dict] = field(default_factory=list)  # per image: class, file, sha256
    warnings: list[str] = field(default_factory=list)  # files skipped when it was built

    def save(self, path: Path) -> None:
        save_tensors(Path(path), {"class_text": self.class_text, "inputs": self.inputs,
                                  "labels": self.labels},
                     {"format": FORMAT, "provenance": self.provenance, "classes": self.classes,
                      "descriptions": self.descriptions, "items": self.items})

    @classmethod
    def load(cls, path: Path, trained: Trained) -> SupportSet:
        """Read a saved support set, refusing one made by another model or backbone."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"support set '{path}' does not exist; save one with --save-support")
        try:
            tensors, meta = load_tensors(path)
        except Exception as err:  # safetensors raises its own error types for foreign files
            raise UserError(f"'{path}' is not a saved support set ({type(err).__name__})") from None
        if meta.get("format") != FORMAT:
            raise UserError(f"'{path}' is not a saved support set (format {meta.get('format')!r}, "
                            f"expected {FORMAT})")
        _raise_if_inconsistent(path, tensors, meta)
        made_by, now = meta["provenance"], trained.provenance
        for key in ("backbone", "model_sha256", "modality", "settings"):
            if made_by.get(key) != now.get(key):
                width = 16 if key == "model_sha256" else None
                raise UserError(
                    f"support set '{path}' was made by model '{made_by.get('model')}' "
                    f"({key} {str(made_by.get(key))[:width]}) but the model now is '{now['model']}' "
                    f"({key} {str(now.get(key))[:width]}); rebuild it from the images with --support")
        return cls(made_by, meta["classes"], meta["descriptions"], tensors["class_text"],
                   tensors["inputs"], tensors["labels"], meta["items"])

    def remove(self, names: list[str]) -> SupportSet:
        """The set without the named classes (a class folder's name is read as its class name)."""
        names = [n if n in self.classes else class_name(n) for n in names]
        unknown = [n for n in names if n not in self.classes]
        if unknown:
            raise UserError(f"cannot remove class(es) {unknown}: the support set has "
                            f"{', '.join(self.classes)}")
        keep = [i for i, c in enumerate(self.classes) if c not in names]
        if not keep:
            raise UserError("removing every class would leave an empty support set")
        new_index = {old: new for new, old in enumerate(keep)}
        rows = [i for i, label in enumerate(self.labels.tolist()) if label in new_index]
        return SupportSet(self.provenance, [self.classes[i] for i in keep],
                          [self.descriptions[i] for i in keep], self.class_text[keep],
                          self.inputs[rows],
                          torch.tensor([new_index[self.labels[i].item()] for i in rows],
                                       dtype=torch.long),
                          [self.items[i] for i in rows])

    def merge(self, other: SupportSet) -> SupportSet:
        """This set plus `other`'s classes (made by the same model); a class in both is refused."""
        if other.provenance != self.provenance:
            raise UserError("cannot merge support sets made by different models")
        both = sorted(set(self.classes) & set(other.classes))
        if both:
            raise UserError(f"class(es) {both} are already in the support set; remove them first")
        offset = len(self.classes)
        return SupportSet(self.provenance, self.classes + other.classes,
                          self.descriptions + other.descriptions,
                          torch.cat([self.class_text, other.class_text]),
                          torch.cat([self.inputs, other.inputs]),
                          torch.cat([self.labels, other.labels + offset]),
                          self.items + other.items, self.warnings + other.warnings)


def _raise_if_inconsistent(path: Path, tensors: dict, meta: dict) -> None:
    """A saved set whose parts do not agree (edited or crafted) is refused in one line."""
    def bad(what: str) -> UserError:
        return UserError(f"support set '{path}' is damaged: {what}; save it again with --save-support")

    needed = {"classes", "descriptions", "items"}
    if not isinstance(meta.get("provenance"), dict) or not needed <= meta.keys():
        raise bad("its metadata lacks provenance, classes, descriptions or items")
    if not {"class_text", "inputs", "labels"} <= tensors.keys():
        raise bad("it lacks the class_text, inputs or labels tensor")
    classes, labels = meta["classes"], tensors["labels"]
    if (not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes)
            or len(set(classes)) != len(classes)):
        raise bad("'classes' must be a non-empty list of distinct names")
    if not isinstance(meta["descriptions"], list) or len(meta["descriptions"]) != len(classes):
        raise bad(f"{len(classes)} classes but {len(meta['descriptions'])} descriptions")
    if tensors["class_text"].ndim != 2 or len(tensors["class_text"]) != len(classes):
        raise bad(f"{len(classes)} classes but class_text of shape {tuple(tensors['class_text'].shape)}")
    if labels.ndim != 1 or labels.dtype != torch.long or len(labels) != len(tensors["inputs"]):
        raise bad(f"labels {tuple(labels.shape)} {labels.dtype} do not match inputs "
                  f"{tuple(tensors['inputs'].shape)}; expected one int64 label per image")
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < len(classes)):
        raise bad(f"labels range {int(labels.min())}..{int(labels.max())}; expected 0..{len(classes) - 1}")
    if not isinstance(meta["items"], list) or len(meta["items"]) not in (0, len(labels)):
        raise bad(f"{len(labels)} images but {len(meta['items'])} item records")


def text_embeddings(table: pd.DataFrame, templates: list[str],
                    encoder: TextEncoder | None = None) -> torch.Tensor:
    """(C, 384) template-mean MiniLM embedding of each class, from the fields the templates use
    (name, description, category, subcategory; a template is skipped for a class lacking its
    fields, as in training)."""
    return class_embeddings(encoder or TextEncoder(), table, templates)[0]


def from_folder(trained: Trained, folder: Path, classes_file: Path | None = None,
                encoder: TextEncoder | None = None, batch_size: int = 64) -> SupportSet:
    """Build a support set from one sub-folder per class.

    Unreadable files are skipped with a warning each; a class left without examples is an error.
    Class fields come from `classes_file`, else the folder's `classes.csv`, else the names alone.
    """
    folder = Path(folder)
    class_dirs = class_folders(folder, "support folder")
    classes = described(Path(classes_file or folder / "classes.csv"))
    files, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        found = files_of(class_dir)
        if not found:
            raise UserError(f"class folder '{class_dir}' is empty; give it at least one example")
        files += found
        labels += [label] * len(found)
    raw, ok, errors = trained.read(files)
    warnings = [errors[i] for i in sorted(errors)]
    kept_labels = [labels[i] for i in ok]
    empty = [class_dirs[c].name for c in range(len(class_dirs)) if c not in kept_labels]
    if empty:
        raise UserError(f"class folder(s) {empty} hold no readable example (first problem: "
                        f"{warnings[0]})")
    table = pd.DataFrame([{"category": "", "subcategory": "", "description": ""}
                          | class_row(classes, d.name) | {"class_name": class_name(d.name)}
                          for d in class_dirs])
    names = list(table["class_name"])
    items = [{"class": names[labels[i]], "file": files[i].name,
              "sha256": hashlib.sha256(files[i].read_bytes()).hexdigest()} for i in ok]
    return SupportSet(trained.provenance, names, list(table["description"]),
                      text_embeddings(table, trained.templates, encoder),
                      trained.inputs(raw, batch_size), torch.tensor(kept_labels, dtype=torch.long),
                      items, warnings)


def from_classes(trained: Trained, classes_file: Path, encoder: TextEncoder | None = None
                 ) -> SupportSet:
    """A support set of class names and fields only, for zero-shot models."""
    table = read_classes(Path(classes_file))
    table["class_name"] = table["class_name"].map(class_name)  # as ingest names a folder's classes
    empty = trained.inputs(trained.modality.blank(trained.settings)[:0])
    return SupportSet(trained.provenance, list(table["class_name"]), list(table["description"]),
                      text_embeddings(table, trained.templates, encoder), empty,
                      torch.zeros(0, dtype=torch.long))
