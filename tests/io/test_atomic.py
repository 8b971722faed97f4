"""atomic_path: the target appears whole or not at all, and a failure leaves nothing behind."""

import json
import math
import os

import pytest

from isanet.io.atomic import TEMPORARY_MARK, atomic_path, write_json_atomic, write_text_atomic
from isanet.io.outputs import LEDGER


def test_file_is_renamed_into_place_only_on_success(tmp_path):
    target = tmp_path / "deep" / "out.txt"
    with atomic_path(target) as temporary:
        temporary.write_text("new")
        assert temporary.parent == target.parent and TEMPORARY_MARK in temporary.name
        assert not target.exists()
    assert target.read_text() == "new"
    assert sorted(os.listdir(target.parent)) == [LEDGER, "out.txt"]  # the write is recorded


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]  # nothing recorded either


def test_a_folder_is_staged_whole_and_removed_on_failure(tmp_path):
    with atomic_path(tmp_path / "set") as staging:
        (staging / "images").mkdir(parents=True)
        (staging / "images" / "a.png").write_bytes(b"x")
    assert (tmp_path / "set" / "images" / "a.png").read_bytes() == b"x"
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "other") as staging:
        (staging / "images").mkdir(parents=True)
        raise RuntimeError("writer failed")
    assert sorted(os.listdir(tmp_path)) == [LEDGER, "set"]


def test_files_get_the_users_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_text_atomic("x", tmp_path / "a.txt")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


def test_json_is_strict_nan_becomes_null(tmp_path):
    path = write_json_atomic({"mIoU": math.nan, "per_class": [1.5, math.inf]}, tmp_path / "r.json")
    assert json.loads(path.read_text()) == {"mIoU": None, "per_class": [1.5, None]}
