import hashlib

import pandas as pd
from PIL import Image

from fewshot.data.validation import check_items
from fewshot.modalities import image as images
from fewshot.modalities import modality_of

IMAGE = modality_of("image")
SIZE = images.ImageSettings(16)


def items_frame(size: int = 16) -> pd.DataFrame:
    png = images.to_png(Image.new("RGB", (size, size), "white"))
    rows = []
    for c, split in enumerate(["train", "train", "val", "test"]):
        for d in range(3):
            rows.append({"item_id": f"c{c}/d{d}", "class_id": f"c{c}", "class_name": f"class {c}",
                         "description": "a class", "group": f"d{d}", "split": split,
                         "content": png, "sha256": hashlib.sha256(png).hexdigest()})
    return pd.DataFrame(rows)


def failed(result):
    return {(c["expectation"], c["column"]) for c in result.checks if not c["success"]}


def test_clean_items_pass_the_gate():
    result = check_items(items_frame(), min_items=3, modality=IMAGE, settings=SIZE)
    assert result.success, result.failure_line()
    assert result.summary()["failed"] == 0 and result.summary()["expectations"] >= 20


def test_class_in_two_splits_fails():
    frame = items_frame()
    frame.loc[0, "split"] = "test"
    result = check_items(frame, min_items=3, modality=IMAGE, settings=SIZE)
    assert not result.success
    assert ("expect_column_values_to_be_between", "splits_of_class") in failed(result)


def test_class_with_too_few_items_fails():
    result = check_items(items_frame(), min_items=4, modality=IMAGE, settings=SIZE)
    assert ("expect_column_values_to_be_between", "items_of_class") in failed(result)
    assert "items_of_class: 12 bad rows" in result.failure_line()


def test_wrong_image_size_and_null_label_fail():
    frame = items_frame(size=17)
    frame["class_name"] = frame["class_name"].astype(object)
    frame.loc[1, "class_name"] = None
    result = check_items(frame, min_items=3, modality=IMAGE, settings=SIZE)
    assert ("expect_column_values_to_be_between", "image_height") in failed(result)
    assert ("expect_column_values_to_not_be_null", "class_name") in failed(result)


def test_missing_required_column_fails():
    result = check_items(items_frame().drop(columns=["group"]), min_items=3, modality=IMAGE, settings=SIZE)
    assert ("expect_column_to_exist", "group") in failed(result)


def test_validation_by_held_out_groups_allows_a_training_class_in_val_but_never_a_test_class():
    frame = items_frame()
    frame.loc[0, "split"] = "val"  # a held-out group of a training class
    assert check_items(frame, 3, IMAGE, SIZE, val_shares_classes=True).success
    assert not check_items(frame, 3, IMAGE, SIZE).success
    frame.loc[9, "split"] = "train"  # a test class with a training item: never
    result = check_items(frame, 3, IMAGE, SIZE, val_shares_classes=True)
    assert ("expect_column_values_to_be_in_set", "test_class_elsewhere") in failed(result)


def test_failed_light_curve_checks_name_the_item_and_its_value():
    import numpy as np

    from fewshot.modalities.light_curve import LightCurveSettings, to_bytes

    settings = LightCurveSettings(bands=["g", "r"], span_days=100, max_points=50, min_points=4)
    good = to_bytes(np.array([[0, 0, 1, 1], [0.1, 1, 2, 1], [0.2, 0, 3, 1], [0.3, 1, 1, 1.0]]))
    short_unsorted = to_bytes(np.array([[0.5, 0, 1, 1], [0.1, 3, np.inf, -1.0]]))
    frame = items_frame()
    frame["content"] = [good] * len(frame)
    frame.loc[4, "content"] = short_unsorted
    result = check_items(frame, 3, modality_of("light_curve"), settings)
    assert failed(result) == {
        ("expect_column_values_to_be_between", "n_points"),
        ("expect_column_values_to_be_in_set", "time_sorted"),
        ("expect_column_values_to_be_in_set", "finite"),
        ("expect_column_values_to_be_between", "min_flux_err"),
        ("expect_column_values_to_be_between", "max_band")}
    assert "'c1/d1: n_points=2'" in result.failure_line()
    assert "'c1/d1: max_band=3'" in result.failure_line()
