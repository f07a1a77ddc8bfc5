"""Your own light curves (or any time series): one sub-folder per class, one CSV per object with
columns `time, band, flux, flux_err[, detected]` (`band` may be left out for a single-band series),
optional `classes.csv` with descriptions: the layout of `fewshot.data.class_folders`, as for image
folders.

Each CSV is its own group (its object), so support and query are always different objects.
`domains.<domain>.settings` in params.yaml names the bands a file may use (a band column holds a name or
its index) and the time span the encoders see; curate names any file and value it refuses.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fewshot.data.sources import register
from fewshot.data.sources.image_folder import ingest_folder


@register("time_series_folder", modality="light_curve")
def ingest_time_series_folder(raw_dir: Path, folder: str, **_: object) -> pd.DataFrame:
    """Check the folder, copy its CSVs into `raw_dir`, describe them in the manifest."""
    return ingest_folder(raw_dir, folder, "light_curve")
