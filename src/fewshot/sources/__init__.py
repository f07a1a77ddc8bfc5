"""Data sources. Each writes raw files under `data/raw/` plus `manifest.csv`, one row per image:

`class_id, class_name, description, category, subcategory, design, path` (path relative to the
raw folder). Curation reads only the manifest, so every source goes through the same checks.
"""

from fewshot.registry import Registry

SOURCES = Registry("data source")
MANIFEST_COLUMNS = [
    "class_id", "class_name", "description", "category", "subcategory", "design", "path",
]

from fewshot.sources import emoji, image_folder  # noqa: E402,F401  (registers the sources)
