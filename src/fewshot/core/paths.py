"""Where the pipeline's files live, relative to the repository root (the `outs` of dvc.yaml)."""

from dataclasses import dataclass
from pathlib import Path

CHECK = Path("reports/check.json")  # the check stage's stamp (see fewshot.stages.check)
MODELS = Path("data/models")
METRICS = Path("reports/metrics")
PLOTS = Path("reports/plots")
FIGURES = Path("reports/figures")
VALIDATION = Path("reports/validation")
REPORT = Path("reports/report.md")
SUMMARY = Path("reports/summary.csv")  # one row per model: n_way, n_shot, accuracy (plots)


@dataclass(frozen=True)
class Domain:
    """Where one domain's data lives: `data/<domain>/...` (params `domains.<domain>`).

    >>> Domain("images").test_episodes.as_posix()
    'data/images/episodes/test.parquet'
    """

    name: str

    @property
    def root(self) -> Path:
        return Path("data") / self.name

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def source(self) -> Path:  # the source and the modality of its files (written by ingest)
        return self.raw / "source.json"

    @property
    def curated(self) -> Path:
        return self.root / "curated"

    @property
    def items(self) -> Path:
        return self.curated / "items.parquet"

    @property
    def classes(self) -> Path:
        return self.curated / "classes.parquet"

    @property
    def kind(self) -> Path:  # the curated items' modality and its settings
        return self.curated / "modality.json"

    @property
    def episodes(self) -> Path:
        return self.root / "episodes"

    @property
    def val_episodes(self) -> Path:  # model selection and calibration (train, evaluate)
        return self.episodes / "val.parquet"

    @property
    def test_episodes(self) -> Path:  # the reported results (evaluate only)
        return self.episodes / "test.parquet"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def text(self) -> Path:  # class-text embeddings (embed)
        return self.features / "text.safetensors"

    @property
    def curate_metrics(self) -> Path:
        return METRICS / f"curate_{self.name}.json"

    @property
    def curate_report(self) -> Path:
        return VALIDATION / f"curate_{self.name}.json"


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
