"""Where the pipeline's files live, relative to the repository root (the `outs` of dvc.yaml)."""

from pathlib import Path

CHECK = Path("reports/check.json")  # the check stage's stamp (see fewshot.stages.check)
RAW = Path("data/raw")
ITEMS = Path("data/curated/items.parquet")
CLASSES = Path("data/curated/classes.parquet")
EPISODES = Path("data/episodes")
FEATURES = Path("data/features")
MODELS = Path("data/models")
METRICS = Path("reports/metrics")
PLOTS = Path("reports/plots")
FIGURES = Path("reports/figures")
VALIDATION = Path("reports/validation")
REPORT = Path("reports/report.md")
SUMMARY = Path("reports/summary.csv")  # one row per model: n_way, n_shot, accuracy (plots)


def model_file(method: str) -> Path:
    return MODELS / method / "model.pt"


def results_doc(n_way: int, n_shot: int) -> Path:
    """The pipeline-generated results page of one episode setting (an `out` of the report stage)."""
    return Path("docs/results") / f"{n_way}way-{n_shot}shot.md"
