"""A tiny generated time-series folder (two-band light curves) for tests and demos.

Usage: python -m fewshot.tools.series DIR [--classes 24] [--per-class 8]

Each class is a shape (periodic, burst, rise), a timescale (short, long), a colour (blue: brighter
in g, red: brighter in r) and an amplitude (strong, weak variability), described in classes.csv in
words ("a blue periodic light curve with a short timescale and strong variability"), so that a
zero-shot model sees every word in training but meets new combinations at test time; each object
(a CSV of its own, so a group of its own) has its own brightness, phase, irregular cadence and
noise over 100 days in bands g and r. Read it with
domain settings `{bands: [g, r], span_days: 100, ...}` (the smoke preset does).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fewshot.core.errors import UserError, one_line_errors

SHAPES = ["periodic", "burst", "rise"]
TIMESCALES = {"short": 2.0, "long": 15.0}  # days
COLOURS = {"blue": (1.5, 1.0), "red": (1.0, 1.5)}  # (g, r) amplitude factors
AMPLITUDES = {"strong": 1.0, "weak": 0.25}  # variability relative to the object's baseline
SPAN_DAYS = 100.0


def kind_of(class_index: int) -> tuple[str, str, str, str]:
    """(colour, shape, timescale, amplitude) of a class: every shape with every colour, short then
    long, strong then weak (24 combinations, then they repeat).

    >>> [kind_of(c) for c in (0, 1, 5, 6, 12)]  # doctest: +NORMALIZE_WHITESPACE
    [('blue', 'periodic', 'short', 'strong'), ('red', 'burst', 'short', 'strong'),
     ('red', 'rise', 'short', 'strong'), ('blue', 'periodic', 'long', 'strong'),
     ('blue', 'periodic', 'short', 'weak')]
    """
    combinations = len(SHAPES) * len(COLOURS)
    return (list(COLOURS)[class_index % len(COLOURS)], SHAPES[class_index % len(SHAPES)],
            list(TIMESCALES)[(class_index // combinations) % len(TIMESCALES)],
            list(AMPLITUDES)[(class_index // (2 * combinations)) % len(AMPLITUDES)])


def light_curve(class_index: int, variant: int) -> list[tuple[float, str, float, float]]:
    """One object's observations (time, band, flux, flux_err), in time order."""
    rng = np.random.default_rng(class_index * 1000 + variant)
    colour, shape, timescale, amplitude = kind_of(class_index)
    tau = TIMESCALES[timescale] * rng.uniform(0.8, 1.25)
    brightness = 10 ** rng.uniform(1, 3)
    start = rng.uniform(10, 60)
    rows = []
    for band, factor in zip(("g", "r"), COLOURS[colour], strict=True):
        times = np.sort(rng.uniform(0, SPAN_DAYS, size=int(rng.integers(25, 45))))
        if shape == "periodic":
            change = np.sin(2 * np.pi * times / tau + rng.uniform(0, 2 * np.pi))
        elif shape == "burst":
            rising = times < start
            change = np.where(rising, np.exp((times - start) / (tau / 4)), np.exp(-(times - start) / tau))
        else:
            change = 1 / (1 + np.exp(-(times - start) / tau))
        signal = 1 + AMPLITUDES[amplitude] * 2 * change
        err = np.full_like(times, 0.05 * brightness)
        flux = brightness * factor * signal + rng.normal(0, err)
        rows += list(zip(times.round(4), [band] * len(times), flux.round(4), err.round(4), strict=True))
    return sorted(rows)


def make_series_folder(root: Path, n_classes: int, per_class: int) -> Path:
    """Write `n_classes` folders of `per_class` light-curve CSVs and a classes.csv."""
    if n_classes < 1 or per_class < 1:
        raise UserError(f"need at least 1 class and 1 object per class, got {n_classes} x {per_class}")
    for c in range(n_classes):
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for v in range(per_class):
            lines = ["time,band,flux,flux_err"] + [f"{t},{b},{f},{e}" for t, b, f, e in light_curve(c, v)]
            (folder / f"object_{v}.csv").write_text("\n".join(lines) + "\n")
    kinds = [kind_of(c) for c in range(n_classes)]
    lines = ["class_name,description"] + [
        f"class_{c:02d},a {colour} {shape} light curve with a {timescale} timescale and {amplitude} "
        "variability" for c, (colour, shape, timescale, amplitude) in enumerate(kinds)]
    (root / "classes.csv").write_text("\n".join(lines) + "\n")
    return root


@one_line_errors
def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m fewshot.tools.series",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--classes", type=int, default=24)
    parser.add_argument("--per-class", type=int, default=8)
    args = parser.parse_args()
    make_series_folder(args.folder, args.classes, args.per_class)
    print(f"wrote {args.classes} classes x {args.per_class} light curves to {args.folder}")


if __name__ == "__main__":
    main()
