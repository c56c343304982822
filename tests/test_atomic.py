"""zoo.atomic: a file or folder is replaced whole or not at all, and no temp is left behind."""

from __future__ import annotations

import os

import pytest

from zoo.atomic import atomic_dir, atomic_file, default_mode, write_text_atomic
from zoo.errors import UserError


def test_a_file_is_replaced_whole_with_a_plain_files_mode(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]
    write_text_atomic(path, "new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["a.json"]
    assert path.stat().st_mode & 0o777 == default_mode()  # not mkstemp's 0600


def test_keep_mode_suffix_and_refusing_to_overwrite(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text("old")
    path.chmod(0o640)
    write_text_atomic(path, "new", keep_mode=True, sync_dir=True)
    assert path.stat().st_mode & 0o777 == 0o640
    with atomic_file(tmp_path / "g.keras", suffix=".keras") as tmp:
        assert tmp.name.endswith(".keras") and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    with pytest.raises(UserError, match="^taken$"):
        write_text_atomic(path, "newer", overwrite=False, exists_message="taken")
    assert path.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["g.keras", "labels.json"]
    write_text_atomic(tmp_path / "fresh", "x", overwrite=False)
    assert (tmp_path / "fresh").read_text() == "x"


def test_a_folder_is_replaced_whole_or_left_as_it_was(tmp_path):
    out = tmp_path / "data"
    with atomic_dir(out, prefix=".data.partial-") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".data.partial-")
        (tmp / "a").write_text("1")
    assert os.listdir(out) == ["a"]
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "b").write_text("2")
            raise RuntimeError("build failed")
    assert os.listdir(out) == ["a"] and os.listdir(tmp_path) == ["data"]
    with atomic_dir(out, mode=default_mode(directory=True)) as tmp:
        (tmp / "b").write_text("2")
    assert os.listdir(out) == ["b"] and os.listdir(tmp_path) == ["data"]
    assert out.stat().st_mode & 0o777 == default_mode(directory=True)
