"""The MLflow Model Registry: the models that passed the regression gate, registered and aliased.

`register` finds, per model, the MLflow model its train@ run logged (by the checkpoint's SHA-256,
the run's tag `model_sha256`), registers it as a version of the registered model `<prefix><name>`
tagged with what evaluate measured (accuracy and its CI, calibrated ECE, the fitted temperature,
the gate's baseline, the git commit), and moves an alias (`champion`) to that version. A checkpoint
already registered keeps its version: promoting again moves the alias, it adds nothing.
`version_tags` reads a registered version's tags back, for `fewshot-predict --model models:/...`.
"""

from __future__ import annotations

from dataclasses import dataclass

from fewshot.core.errors import UserError


@dataclass(frozen=True)
class Candidate:
    """A model of the workspace that passed the gate: its checkpoint's hash and version tags."""

    name: str
    sha256: str
    tags: dict[str, str]


def register(candidates: list[Candidate], experiment: str, alias: str, prefix: str) -> list[dict]:
    """Register each candidate (or find its version) and point `alias` at it; one row per model.

    Raises:
        UserError: a model whose train@ run (with that checkpoint) is not in the tracking store.
    """
    from fewshot.core.run_tags import git_commit
    from fewshot.core.tracking import open_store, tracking_uri

    mlflow = open_store()
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(experiment)
    sources = []  # every train@ run first: a model that cannot be promoted stops all of them
    for candidate in candidates:
        runs = [] if found is None else client.search_runs(
            [found.experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
            filter_string=(f"tags.stage = 'train@{candidate.name}' and "
                           f"tags.model_sha256 = '{candidate.sha256}'"))
        if not runs or "logged_model" not in runs[0].data.tags:
            raise UserError(f"model '{candidate.name}': no train@{candidate.name} run in "
                            f"{tracking_uri()} (experiment '{experiment}') logged the checkpoint "
                            f"{candidate.sha256[:12]}; promote from the store its `dvc repro` "
                            "logged to (MLFLOW_TRACKING_URI); nothing promoted")
        sources.append(runs[0])
    rows = []
    for candidate, run in zip(candidates, sources, strict=True):
        name = f"{prefix}{candidate.name}"
        version = _registered(client, name, candidate.sha256)
        new = version is None
        if new:
            tags = candidate.tags | {"model_sha256": candidate.sha256, "git_commit": git_commit()}
            version = mlflow.register_model(run.data.tags["logged_model"], name, tags=tags).version
            client.update_model_version(name, version, description=(
                f"train@{candidate.name} run {run.info.run_id}, accuracy "
                f"{tags.get('accuracy', '?')} ± {tags.get('accuracy_ci95', '?')}"))
        client.set_registered_model_alias(name, alias, version)
        rows.append({"model": candidate.name, "registered": name, "version": str(version),
                     "new": new, "run_id": run.info.run_id})
    return rows


def _registered(client, name: str, sha256: str) -> str | None:
    """The version of registered model `name` holding this checkpoint, if any."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except Exception:  # noqa: BLE001  (no such registered model: MLflow raises its own errors)
        return None
    return next((v.version for v in versions if v.tags.get("model_sha256") == sha256), None)


def version_tags(uri: str) -> dict[str, str]:
    """The tags of the registered version a `models:/NAME@ALIAS` or `models:/NAME/VERSION` URI
    names; {} for other URIs (a logged model's own `models:/m-...`, `runs:/`)."""
    from fewshot.core.tracking import open_store

    name, _, rest = uri.removeprefix("models:/").partition("/")
    name, at, alias = name.partition("@")
    if not uri.startswith("models:/") or not (at or rest):
        return {}
    client = open_store().MlflowClient()
    version = client.get_model_version_by_alias(name, alias) if at else client.get_model_version(name, rest)
    return dict(version.tags)
