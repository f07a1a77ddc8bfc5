"""The light-curve CSV reader: every malformed file is refused in one line naming the file, the file
line and the value; a valid file reads the same numbers as pandas would."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fewshot.core.errors import UserError
from fewshot.modalities.light_curve import LightCurveSettings, read_table

SETTINGS = LightCurveSettings(bands=["g", "r"], span_days=100, max_points=50, min_points=2)
GOOD = "time,band,flux,flux_err,detected\n0.5,g,1.25,0.1,1\n1.5, r ,-2e-3,0.2,0\n"


def _write(tmp_path, text: str | bytes, name: str = "object.csv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_valid_file_reads_the_numbers_pandas_reads(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"time": rng.uniform(0, 300, 200), "band": rng.choice(["g", "r"], 200),
                          "flux": rng.normal(size=200) * 1e3, "flux_err": rng.uniform(1, 9, 200),
                          "detected": rng.integers(0, 2, 200)})
    path = tmp_path / "object.csv"
    frame.to_csv(path, index=False)
    expected = pd.read_csv(path)
    table = read_table(path, SETTINGS)
    np.testing.assert_array_equal(table[:, 0], expected["time"].to_numpy())
    np.testing.assert_array_equal(table[:, 1], (expected["band"] == "r").to_numpy(dtype=float))
    np.testing.assert_array_equal(table[:, 2], expected["flux"].to_numpy())
    np.testing.assert_array_equal(table[:, 3], expected["flux_err"].to_numpy())


def test_spaces_quotes_blank_lines_band_indices_and_a_byte_order_mark_are_accepted(tmp_path):
    text = "\ufefftime, band ,flux,flux_err\n\n0.5,\"g\",1.25,0.1\n\n 1.5 ,1, 3 ,0.2\n"
    table = read_table(_write(tmp_path, text), SETTINGS)
    assert table.tolist() == [[0.5, 0.0, 1.25, 0.1], [1.5, 1.0, 3.0, 0.2]]


def test_single_band_series_needs_no_band_column(tmp_path):
    table = read_table(_write(tmp_path, "time,flux,flux_err\n0,1,1\n1,2,1\n"), SETTINGS)
    assert table[:, 1].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("text, message", [
    ("", "cannot read light curve '.*object.csv': the file is empty"),
    ("time,band,flux,flux_err\n", "light curve '.*object.csv' has no rows"),
    ("time,band,flux\n1,g,2\n", r"lacks column\(s\) flux_err; found time, band, flux"),
    ("time,band,flux,flux_err\n1,g,2,0.1\n2,g,3,0.1,9\n",
     r"row 3: 5 fields, the header has 4 \(time, band, flux, flux_err\)"),
    ("time,band,flux,flux_err,flux\n1,g,2,0.1,3\n", "column\\(s\\) flux appear more than once"),
    ("time,band,flux,flux_err\n1,g,2,0.1\n2,g,abc,0.1\n", "row 3: flux 'abc' is not a finite number"),
    ("time,band,flux,flux_err\n1,g,2,0.1\n\n2,g,nan,0.1\n", "row 4: flux 'nan' is not a finite number"),
    ("time,band,flux,flux_err\n1,g,inf,0.1\n", "row 2: flux 'inf' is not a finite number"),
    ("time,band,flux,flux_err\n,g,1,0.1\n", "row 2: time '' is not a finite number"),
    ("time,band,flux,flux_err\n1,g,1,NA\n", "row 2: flux_err 'NA' is not a finite number"),
    ("time,band,flux,flux_err\n1,g,1,0.1\n2,g,1,0\n", "row 3: flux_err '0' must be > 0"),
    ("time,band,flux,flux_err\n1,g,1,0.1\n2,u,1,0.1\n",
     "row 3: band 'u' is not one of g, r \\(or an index 0-1\\)"),
    ("time,band,flux,flux_err\n1,g,1,0.1\n2,2,1,0.1\n", "row 3: band '2' is not one of g, r"),
    ('time,band,flux,flux_err\n1,"g,1,0.1\n', "cannot read light curve '.*object.csv': "),
    (b"time,band,flux,flux_err\n1,\xff,1,0.1\n", "cannot read light curve '.*object.csv': .*utf-8"),
])
def test_bad_file_is_one_line_naming_the_file_line_and_value(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(UserError, match=message) as err:
        read_table(path, SETTINGS)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_missing_file_and_a_folder_are_named(tmp_path):
    for path in (tmp_path / "absent.csv", tmp_path):
        with pytest.raises(UserError, match=f"cannot read light curve '{path}'"):
            read_table(path, SETTINGS)
