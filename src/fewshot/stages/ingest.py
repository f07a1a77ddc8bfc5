"""Stage `ingest`: bring the configured source's raw images into `data/raw/` with a manifest.

Usage: python -m fewshot.stages.ingest        (run by `dvc repro`, from the repository root)
Params: data.source (emoji | image_folder), data.image_folder
Writes: data/raw/ (images, manifest.csv, SOURCES.md); one MLflow run tagged stage=ingest.
"""

from __future__ import annotations

from fewshot import params as params_lib
from fewshot import paths
from fewshot.errors import one_line_errors
from fewshot.fileio import atomic_dir, project_root
from fewshot.sources import SOURCES
from fewshot.tracking import stage_run


@one_line_errors
def main() -> None:
    params = params_lib.load()
    ingest = SOURCES.get(params.data.source)
    downloads = project_root() / "data" / "downloads"  # shared by `dvc exp --temp` copies
    with stage_run("ingest", params.tracking.experiment) as run:
        run.log_params(params_lib.section(params, "data"))
        with atomic_dir(paths.RAW) as tmp:
            manifest = ingest(raw_dir=tmp, downloads=downloads, image_folder=params.data.image_folder)
            manifest.to_csv(tmp / "manifest.csv", index=False)
        per_design = manifest.groupby("design").size()
        run.log_metrics({"images": len(manifest), "classes": manifest["class_id"].nunique(),
                         "designs": len(per_design)})
        # Design names come from the data (an image folder's file names): a table, not metric names.
        run.log_dict({str(design): int(n) for design, n in per_design.items()}, "images_per_design.json")
        print(f"ingest: {len(manifest)} images of {manifest['class_id'].nunique()} classes "
              f"in {len(per_design)} designs -> {paths.RAW}")


if __name__ == "__main__":
    main()
