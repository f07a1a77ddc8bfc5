"""Data sources. Each writes raw files under `data/raw/` plus `manifest.csv`, one row per item:

`class_id, class_name, description, category, subcategory, group, path` (path relative to the
raw folder). `group` is what must differ between an episode's support and query items (an emoji
design, an image file, a light curve's object). Curation reads only the manifest, and the source's
modality (`Source.modality`, a name of `fewshot.modalities.MODALITIES`) turns each file into a
stored item, so every source goes through the same checks.
"""

from __future__ import annotations

from typing import Callable

from fewshot.core.registry import Registry

SOURCES = Registry("data source")
MANIFEST_COLUMNS = [
    "class_id", "class_name", "description", "category", "subcategory", "group", "path",
]


def register(name: str, modality: str) -> Callable:
    """`SOURCES.register(name)` for an ingest function, with the kind of data it gives."""

    def add(ingest: Callable) -> Callable:
        ingest.modality = modality
        return SOURCES.register(name)(ingest)

    return add


from fewshot.data.sources import emoji, image_folder, plasticc, time_series_folder  # noqa: E402,F401  (registers the sources)
