"""Stage `episodes`: fixed val and test episode files, and their content hashes.

Usage: python -m fewshot.stages.episodes      (run by `dvc repro`, from the repository root)
Params: seed, n_way, n_shot, n_query, episodes.val_episodes, episodes.test_episodes
Reads: data/curated/items.parquet. Writes: data/episodes/{val,test}.parquet and hashes.txt.
"""

from __future__ import annotations

import pandas as pd

from fewshot import episodes, paths
from fewshot import params as params_lib
from fewshot.errors import one_line_errors
from fewshot.fileio import atomic_dir
from fewshot.tracking import stage_run


@one_line_errors
def main() -> None:
    params = params_lib.load()
    spec = episodes.EpisodeSpec(params.n_way, params.n_shot, params.n_query)
    items = pd.read_parquet(paths.ITEMS, columns=["item_id", "class_id", "design", "split"])
    counts = {"val": params.episodes.val_episodes, "test": params.episodes.test_episodes}
    # Build both samplers first so an impossible request fails before anything is written.
    samplers = {s: episodes.EpisodeSampler(items[items["split"] == s], spec, s) for s in counts}
    tables = {s: episodes.sample_table(samplers[s], n, seed=params.seed + offset)
              for offset, (s, n) in enumerate(counts.items())}
    hashes = {s: episodes.table_hash(t) for s, t in tables.items()}
    tags = {"episodes_hash": hashes["test"], "val_episodes_hash": hashes["val"]}
    with stage_run("episodes", params.tracking.experiment, tags) as run:
        run.log_params(params_lib.section(params, "seed", "n_way", "n_shot", "n_query", "episodes"))
        with atomic_dir(paths.EPISODES) as tmp:
            for split, table in tables.items():
                table.to_parquet(tmp / f"{split}.parquet", index=False)
            (tmp / "hashes.txt").write_text("".join(f"{s} {h}\n" for s, h in hashes.items()))
        run.log_metrics({f"{s}_episodes": n for s, n in counts.items()})
        print(f"episodes: {counts} {spec.n_way}-way {spec.n_shot}-shot {spec.n_query}-query; "
              f"test hash {hashes['test'][:12]}")


if __name__ == "__main__":
    main()
