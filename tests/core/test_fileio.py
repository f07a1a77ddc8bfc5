"""Atomic writes give outputs the modes a plain write would (the umask's), not mkstemp's 0600."""

import os
import stat

import pytest

from fewshot.core.fileio import atomic_dir, atomic_path, write_json


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_atomic_outputs_take_the_umask_modes(tmp_path, umask, file_mode, dir_mode):
    before = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"b")
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "c.txt").write_text("c")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == dir_mode
    assert (tmp_path / "folder/c.txt").read_text() == "c"
