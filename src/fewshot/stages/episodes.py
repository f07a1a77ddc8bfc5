"""Stage `episodes@<domain>`: a domain's fixed val and test episode files, and their content hashes.

Usage: python -m fewshot.stages.episodes DOMAIN  (run by `dvc repro` as episodes@DOMAIN)
Params: seed, n_way, n_shot, domains.DOMAIN.n_query, domains.DOMAIN.episodes (val_episodes,
test_episodes)
Reads: data/<domain>/curated/items.parquet. Writes: data/<domain>/episodes/{val,test}.parquet (two
DVC outs: train depends on the val file only).
"""

from __future__ import annotations

import pandas as pd

from fewshot.core import params as params_lib
from fewshot.core import paths
from fewshot.core.errors import one_line_errors
from fewshot.core.fileio import write_parquet
from fewshot.core.tracking import stage_run
from fewshot.data import episodes
from fewshot.stages.argv import domain_from_argv


@one_line_errors
def main() -> None:
    params = params_lib.load(models=False)  # builds no model: no torch
    name = domain_from_argv("episodes", params.domains)
    domain, where = params.domains[name], paths.Domain(name)
    spec = episodes.EpisodeSpec(params.n_way, params.n_shot, domain.n_query)
    items = pd.read_parquet(where.items, columns=["item_id", "class_id", "group", "split"])
    counts = {"val": domain.episodes.val_episodes, "test": domain.episodes.test_episodes}
    # Build both samplers first so an impossible request fails before anything is written.
    samplers = {s: episodes.EpisodeSampler(items[items["split"] == s], spec, s) for s in counts}
    tables = {s: episodes.sample_table(samplers[s], n, seed=params.seed + offset)
              for offset, (s, n) in enumerate(counts.items())}
    hashes = {s: episodes.table_hash(t) for s, t in tables.items()}
    tags = {"domain": name, "episodes_hash": hashes["test"], "val_episodes_hash": hashes["val"]}
    with stage_run(f"episodes@{name}", params.tracking.experiment, tags) as run:
        run.log_params(params_lib.section(params, "seed", "n_way", "n_shot", f"domains.{name}.n_query",
                                          f"domains.{name}.episodes"))
        for split, table in tables.items():
            write_parquet(where.episodes / f"{split}.parquet", table)
        run.log_metrics({f"{s}_episodes": n for s, n in counts.items()})
        print(f"episodes@{name}: {counts} {spec.n_way}-way {spec.n_shot}-shot {spec.n_query}-query; "
              f"test hash {hashes['test'][:12]}")


if __name__ == "__main__":
    main()
