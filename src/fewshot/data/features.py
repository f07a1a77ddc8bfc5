"""Cached features of frozen backbones: computed once per (backbone, item) into a domain's
`data/<domain>/features/`, read by train and evaluate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from fewshot.core.errors import UserError
from fewshot.core.fileio import load_tensors, save_tensors, sha256_file


def path_for(backbone: str, folder: Path) -> Path:
    return folder / f"{backbone}.safetensors"


def logged_inputs(where, backbone: str | None, context: str) -> list[dict]:
    """The cached files a train or evaluate run reads, as `StageRun.log_inputs` datasets: the
    backbone's features (`backbone`: None when the model reads stored items instead) and the class
    texts of the domain `where` (a `paths.Domain`), with their files' sha256."""
    files = [(f"features/{backbone}", path_for(backbone, where.features))] if backbone else []
    return [{"name": f"{where.name}/{what}", "path": path, "sha256": sha256_file(path), "context": context}
            for what, path in [*files, ("class texts", where.text)]]


def save(path: Path, item_ids: list[str], sha256: list[str], features: torch.Tensor) -> None:
    save_tensors(path, {"features": features}, {"item_id": list(item_ids), "sha256": list(sha256)})


def load_for(items: pd.DataFrame, backbone: str, folder: Path) -> torch.Tensor:
    """Features (len(items), D) in the order of `items`, checked against the items' content hashes.

    Raises:
        UserError: the backbone's features were not computed, or were computed on other items.
    """
    path = path_for(backbone, folder)
    if not path.exists():
        raise UserError(f"no cached features for backbone '{backbone}' at {path}; "
                        "add it to its domain's embed.backbones")
    tensors, cached = load_tensors(path)
    cached["features"] = tensors["features"]
    row_of = {item: i for i, item in enumerate(cached["item_id"])}
    missing = [item for item in items["item_id"] if item not in row_of]
    if missing:
        raise UserError(f"{len(missing)} items lack cached '{backbone}' features (first: "
                        f"{missing[0]}); re-run the embed stage")
    rows = torch.tensor([row_of[item] for item in items["item_id"]])
    stale = [s for s, r in zip(items["sha256"], rows.tolist(), strict=True) if cached["sha256"][r] != s]
    if stale:
        raise UserError(f"cached '{backbone}' features are stale for {len(stale)} items; "
                        "re-run the embed stage")
    return cached["features"][rows]
