"""The ledger and the guard at the door every writer goes through (atomic_path): a file is the kit's while its
bytes have the recorded sha256, a folder while every file in it is, the ledger is never followed through a
link, older ledgers still read, and an empty name is never the current folder."""

from __future__ import annotations

import os

import pytest

from isanet.io.atomic import atomic_path, write_text_atomic
from isanet.io.outputs import LEDGER, OutputError, check_output, check_replaceable, record_output, written_by_kit


def test_a_change_of_the_bytes_is_seen_even_with_the_same_size_and_time(tmp_path):
    path = write_text_atomic("kit", tmp_path / "r.json")
    info = path.stat()
    path.write_text("you")  # the same size; then the time put back, as a copy tool would
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert not written_by_kit(path)
    with pytest.raises(OutputError, match=r"r\.json: already exists and was not written by isanet \(changed since"):
        write_text_atomic("new", path)
    assert path.read_text() == "you"
    os.utime(path, ns=(1, 1))  # a touch alone changes nothing the kit owns
    path.write_text("kit")
    assert written_by_kit(path)


def test_a_ledger_line_of_an_older_version_still_counts_by_size_and_time(tmp_path):
    path = tmp_path / "old.json"
    path.write_text("{}")
    info = path.stat()
    (tmp_path / LEDGER).write_text(f"{info.st_size}\t{info.st_mtime_ns}\told.json\n-1\t0\tsample\n")
    assert written_by_kit(path)
    write_text_atomic("{}\n", path)  # replaced, and recorded with its digest now
    assert "sha256:" in (tmp_path / LEDGER).read_text().splitlines()[-1]
    (tmp_path / "sample" / "a").mkdir(parents=True)
    (tmp_path / "sample" / "a" / "x.png").write_bytes(b"x")
    with pytest.raises(OutputError, match=r"holds a/x\.png, which isanet did not write \(.*has only an older "
                                          r"isanet's line for the folder sample, which vouches for no file in it"):
        check_replaceable(tmp_path / "sample", "--out")


def test_a_log_the_kit_appends_to_stays_its_own_until_its_recorded_part_changes(tmp_path):
    path = write_text_atomic('{"iter": 1}\n', tmp_path / "log.jsonl")
    record_output(path, appendable=True)
    with path.open("a") as log:
        log.write('{"iter": 2}\n')
    assert written_by_kit(path)
    path.write_text('{"iter": 9}\n{"iter": 2}\n')
    assert not written_by_kit(path)


def test_a_folder_is_replaced_only_while_every_file_in_it_is_the_kits(tmp_path):
    with atomic_path(tmp_path / "set") as staging:
        (staging / "images").mkdir(parents=True)
        (staging / "images" / "a.png").write_bytes(b"first")
    with atomic_path(tmp_path / "set") as staging:  # the kit's own: replaced whole
        (staging / "images").mkdir(parents=True)
        (staging / "images" / "b.png").write_bytes(b"second")
    assert sorted(p.name for p in (tmp_path / "set" / "images").iterdir()) == ["b.png"]
    (tmp_path / "set" / "images" / "mine.png").write_bytes(b"the user's")
    (tmp_path / "set" / "notes.txt").write_text("the user's")
    with pytest.raises(OutputError, match=r"output .*set: holds images/mine\.png and 1 more file, which isanet did "
                                          r"not write \(no record in .*\); refusing to replace the folder and lose "
                                          r"them: move them away"), atomic_path(tmp_path / "set") as staging:
        staging.mkdir()
    assert (tmp_path / "set" / "images" / "mine.png").read_bytes() == b"the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [LEDGER, "set"]  # no staging, nothing set aside
    (tmp_path / "set" / "notes.txt").unlink()
    (tmp_path / "set" / "images" / "mine.png").unlink()
    (tmp_path / "set" / "images" / "b.png").write_bytes(b"edited")
    with pytest.raises(OutputError, match=r"holds images/b\.png, which isanet did not write \(changed since"):
        check_replaceable(tmp_path / "set", "--out")


def test_the_ledger_is_never_followed_through_a_link(tmp_path):
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / LEDGER).symlink_to(elsewhere)
    path = write_text_atomic("{}", out / "r.json")
    assert elsewhere.read_text() == "precious\n"  # not appended to
    assert not written_by_kit(path)
    with pytest.raises(OutputError, match=r"its ledger .*\.isanet-outputs is not a regular file, and isanet never "
                                          "follows or reads such a ledger"):
        write_text_atomic("{}", out / "r.json")
    mine = out / "mine.json"
    mine.write_text("mine")  # a link to a ledger that vouches for the user's file is not read either
    elsewhere.write_text(f"4\t0\tsha256:{'0' * 64}\tmine.json\n")
    assert not written_by_kit(mine)


def test_an_empty_name_is_refused_not_taken_for_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for kind in ("file", "dir"):
        with pytest.raises(OutputError, match=rf"--out: expected a {'folder' if kind == 'dir' else 'file'} name, "
                                              r"got an empty one \(it would mean the current folder"):
            check_output("", "--out", kind=kind)
        with pytest.raises(OutputError, match="got an empty one"):
            check_output("  ", "--out", kind=kind)
    assert list(tmp_path.iterdir()) == []
