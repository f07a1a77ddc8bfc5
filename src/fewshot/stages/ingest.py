"""Stage `ingest`: bring the configured source's raw images into `data/raw/` with a manifest.

Usage: python -m fewshot.stages.ingest        (run by `dvc repro`, from the repository root)
Params: data.source (emoji | image_folder), data.folder
Writes: data/raw/ (images, manifest.csv, SOURCES.md); one MLflow run tagged stage=ingest.
"""

from __future__ import annotations

from fewshot.core import params as params_lib
from fewshot.core import paths
from fewshot.core.errors import one_line_errors
from fewshot.core.fileio import atomic_dir, project_root, write_json
from fewshot.core.tracking import stage_run
from fewshot.data.sources import SOURCES


@one_line_errors
def main() -> None:
    params = params_lib.load()
    ingest = SOURCES.get(params.data.source)
    downloads = project_root() / "data" / "downloads"  # shared by `dvc exp --temp` copies
    with stage_run("ingest", params.tracking.experiment) as run:
        run.log_params(params_lib.section(params, "data"))
        with atomic_dir(paths.RAW) as tmp:
            manifest = ingest(raw_dir=tmp, downloads=downloads, folder=params.data.folder)
            manifest.to_csv(tmp / "manifest.csv", index=False)
            write_json(tmp / paths.SOURCE.name, {"source": params.data.source,
                                                 "modality": ingest.modality})
        per_group = manifest.groupby("group").size()
        run.log_metrics({"items": len(manifest), "classes": manifest["class_id"].nunique(),
                         "groups": len(per_group)})
        # Group names come from the data (an image folder's file names): a table, not metric names.
        run.log_dict({str(group): int(n) for group, n in per_group.items()}, "items_per_group.json")
        print(f"ingest: {len(manifest)} {ingest.modality} items of {manifest['class_id'].nunique()} "
              f"classes in {len(per_group)} groups -> {paths.RAW}")


if __name__ == "__main__":
    main()
