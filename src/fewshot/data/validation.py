"""The Great Expectations gate on the curated items table."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from fewshot.modalities import Modality

REQUIRED_COLUMNS = ["item_id", "class_id", "class_name", "description", "group", "split",
                    "content", "sha256"]
SPLITS = ["train", "val", "test"]


@dataclass(frozen=True)
class GateResult:
    success: bool
    checks: list[dict]  # one per expectation: name, column, success, unexpected count

    def summary(self) -> dict:
        failed = [c for c in self.checks if not c["success"]]
        return {"success": self.success, "expectations": len(self.checks),
                "failed": len(failed), "checks": self.checks}

    def failure_line(self) -> str:
        failed = [f"{c['expectation']}({c['column']}: {c['unexpected']} bad rows"
                  + (f", e.g. {', '.join(map(repr, c['examples']))})" if c.get("examples") else ")")
                  for c in self.checks if not c["success"]]
        return "; ".join(failed)


def check_items(items: pd.DataFrame, min_items: int, modality: Modality, settings,
                val_shares_classes: bool = False) -> GateResult:
    """Run the curation expectations on `items` (one row per stored item).

    Expectations: required columns present and non-null; item ids unique; split in train/val/test;
    every class in exactly one split (with `val_shares_classes`, validation by held-out groups: a
    training class may also be in val, a test class never elsewhere); every class has >=
    `min_items` items; and the modality's own (images: every image decodes to (size, size, 3);
    light curves: sorted, finite, positive errors, known bands, enough points).
    A failed check names up to three failing items.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    frame = _with_derived_columns(items, modality)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (ctx.data_sources.add_pandas("curated").add_dataframe_asset("items")
             .add_batch_definition_whole_dataframe("all"))
    suite = ctx.suites.add(gx.ExpectationSuite(name="curated_items"))
    for expectation in (_expectations(gx, min_items, 2 if val_shares_classes else 1)
                        + modality.expectations(gx, settings)):
        suite.add_expectation(expectation)
    result = ctx.validation_definitions.add(
        gx.ValidationDefinition(name="curated_items", data=batch, suite=suite)
    ).run(batch_parameters={"dataframe": frame},
          result_format={"result_format": "SUMMARY", "unexpected_index_column_names": ["item_id"]})
    checks = [_check_row(r.to_json_dict()) for r in result.results]
    return GateResult(success=bool(result.success), checks=checks)


def _expectations(gx, min_items: int, max_splits: int) -> list:
    e = gx.expectations
    found = [e.ExpectColumnToExist(column=c) for c in REQUIRED_COLUMNS]
    not_null = [e.ExpectColumnValuesToNotBeNull(column=c) for c in REQUIRED_COLUMNS]
    return found + not_null + [
        e.ExpectColumnValuesToBeUnique(column="item_id"),
        e.ExpectColumnValuesToBeInSet(column="split", value_set=SPLITS),
        e.ExpectColumnValuesToBeBetween(column="splits_of_class", min_value=1, max_value=max_splits),
        e.ExpectColumnValuesToBeInSet(column="test_class_elsewhere", value_set=[False]),
        e.ExpectColumnValuesToBeBetween(column="items_of_class", min_value=min_items),
    ]


def _with_derived_columns(items: pd.DataFrame, modality: Modality) -> pd.DataFrame:
    frame = items.copy()
    derived = pd.DataFrame([modality.columns(c if isinstance(c, bytes) else None)
                            for c in items["content"]], index=items.index)
    frame[list(derived.columns)] = derived
    by_class = items.groupby("class_id")
    frame["splits_of_class"] = by_class["split"].transform("nunique")
    is_test = items["split"] == "test"
    frame["test_class_elsewhere"] = (is_test.groupby(items["class_id"]).transform("any")
                                     & ~is_test.groupby(items["class_id"]).transform("all"))
    frame["items_of_class"] = by_class["item_id"].transform("size")
    return frame


def _check_row(result: dict) -> dict:
    config = result["expectation_config"]
    stats = result.get("result") or {}
    return {
        "expectation": config["type"],
        "column": config["kwargs"].get("column", ""),
        "success": bool(result["success"]),
        "unexpected": int(stats.get("unexpected_count") or 0),
        "examples": _examples(stats, config["kwargs"].get("column", "")),
    }


def _examples(stats: dict, column: str) -> list[str]:
    """Up to three failing values, each with the item it belongs to when GX names it."""
    named = stats.get("partial_unexpected_index_list") or []
    if named and isinstance(named[0], dict) and "item_id" in named[0]:
        return [f"{row['item_id']}: {column}={row.get(column)}" for row in named[:3]]
    return [str(v) for v in (stats.get("partial_unexpected_list") or [])[:3]]
