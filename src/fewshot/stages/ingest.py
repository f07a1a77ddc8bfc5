"""Stage `ingest@<domain>`: bring a domain's raw files into `data/<domain>/raw/` with a manifest.

Usage: python -m fewshot.stages.ingest DOMAIN   (run by `dvc repro` as ingest@DOMAIN; DOMAIN is a
key of params `domains`, e.g. images, light_curves)
Params: domains.DOMAIN.source (emoji | image_folder | plasticc | time_series_folder), .folder
Writes: data/<domain>/raw/ (files.zip holding the files at their manifest paths, manifest.csv,
source.json, SOURCES.md); one MLflow run tagged
stage=ingest@DOMAIN, domain=DOMAIN.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fewshot.core import params as params_lib
from fewshot.core import paths
from fewshot.core.errors import one_line_errors
from fewshot.core.fileio import atomic_dir, project_root, write_json
from fewshot.core.tracking import stage_run
from fewshot.data import raw_files
from fewshot.data.sources import SOURCES
from fewshot.stages.argv import domain_from_argv


@one_line_errors
def main() -> None:
    params = params_lib.load(models=False)  # builds no model: no torch
    name = domain_from_argv("ingest", params.domains)
    domain, where = params.domains[name], paths.Domain(name)
    ingest = SOURCES.get(domain.source)
    downloads = project_root() / "data" / "downloads"  # shared by `dvc exp --temp` copies
    with stage_run(f"ingest@{name}", params.tracking.experiment, {"domain": name}) as run:
        run.log_params({"source": domain.source, "folder": domain.folder})
        with atomic_dir(where.raw) as tmp, \
                tempfile.TemporaryDirectory(prefix=".files.", dir=where.root) as files:
            manifest = ingest(raw_dir=Path(files), downloads=downloads, folder=domain.folder)
            raw_files.pack(Path(files), manifest["path"], tmp)
            for extra in Path(files).iterdir():  # what a source writes beside the items: SOURCES.md
                if extra.is_file():
                    shutil.move(extra, tmp / extra.name)
            manifest.to_csv(tmp / "manifest.csv", index=False)
            write_json(tmp / where.source.name, {"source": domain.source, "modality": ingest.modality})
        per_group = manifest.groupby("group").size()
        run.log_metrics({"items": len(manifest), "classes": manifest["class_id"].nunique(),
                         "groups": len(per_group)})
        # Group names come from the data (an image folder's file names): a table, not metric names.
        run.log_dict({str(group): int(n) for group, n in per_group.items()}, "items_per_group.json")
        print(f"ingest@{name}: {len(manifest)} {ingest.modality} items of "
              f"{manifest['class_id'].nunique()} classes in {len(per_group)} groups -> {where.raw}")


if __name__ == "__main__":
    main()
