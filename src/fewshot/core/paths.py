"""Where the pipeline's files live, relative to the repository root (the `outs` of dvc.yaml)."""

from pathlib import Path

CHECK = Path("reports/check.json")  # the check stage's stamp (see fewshot.stages.check)
RAW = Path("data/raw")
SOURCE = RAW / "source.json"  # the source and the modality of its files (written by ingest)
ITEMS = Path("data/curated/items.parquet")
CLASSES = Path("data/curated/classes.parquet")
KIND = Path("data/curated/modality.json")  # the curated items' modality and its settings
EPISODES = Path("data/episodes")
VAL_EPISODES = EPISODES / "val.parquet"    # model selection and calibration (train, evaluate)
TEST_EPISODES = EPISODES / "test.parquet"  # the reported results (evaluate only)
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


def calibration_file(model: Path) -> Path:
    """Where evaluate writes the temperature of a model file: beside its folder (its own DVC out).

    >>> calibration_file(Path("data/models/protonet/model.pt")).as_posix()
    'data/models/protonet.calibration.json'
    """
    folder = Path(model).parent
    return folder.with_name(f"{folder.name}.calibration.json")


def results_doc(n_way: int, n_shot: int) -> Path:
    """The pipeline-generated results page of one episode setting (written by the report stage with
    the default data; committed, not a DVC output)."""
    return Path("docs/results") / f"{n_way}way-{n_shot}shot.md"
