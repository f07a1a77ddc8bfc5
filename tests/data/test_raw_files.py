"""The raw archive: the same files give the same bytes (DVC hash), and come back as they went in."""

import os

import pytest

from fewshot.core.errors import UserError
from fewshot.data import raw_files


def _files(root, stamp):
    names = {"b/2.png": b"\x89PNG two", "a/1.csv": b"mjd,flux\n1,2\n",
             "a/\u00fcn\u00efc\u00f6de (1).png": b"x"}
    for rel, data in names.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        os.utime(root / rel, (stamp, stamp))
    return names


def test_the_same_files_pack_to_the_same_bytes_whatever_their_times_and_order(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    names = _files(first, 1_000_000_000)
    _files(second, 1_700_000_000)
    (tmp_path / "raw1").mkdir()
    (tmp_path / "raw2").mkdir()
    a = raw_files.pack(first, list(names), tmp_path / "raw1")
    b = raw_files.pack(second, list(reversed(names)), tmp_path / "raw2")
    assert a.read_bytes() == b.read_bytes()
    (second / "a/1.csv").write_bytes(b"mjd,flux\n1,3\n")
    raw_files.pack(second, list(names), tmp_path / "raw2")
    assert a.read_bytes() != b.read_bytes()


def test_files_come_back_at_their_manifest_paths_and_the_folder_goes(tmp_path):
    names = _files(tmp_path / "files", 0)
    (tmp_path / "raw").mkdir()
    raw_files.pack(tmp_path / "files", list(names), tmp_path / "raw")
    with raw_files.extracted(tmp_path / "raw", ["b/2.png"]) as folder:
        assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == \
            ["b/2.png"]
        assert (folder / "b/2.png").read_bytes() == names["b/2.png"]
    assert not folder.exists()
    with raw_files.extracted(tmp_path / "raw") as folder:
        assert {rel: (folder / rel).read_bytes() for rel in names} == names
    assert raw_files.read(tmp_path / "raw", "a/1.csv") == names["a/1.csv"]


def test_a_raw_folder_without_its_archive_is_one_line(tmp_path):
    raw = tmp_path / "data/images/raw"
    raw.mkdir(parents=True)
    with pytest.raises(UserError, match=r"files.zip' does not exist; run `dvc repro ingest@images`"):
        with raw_files.extracted(raw):
            pass
