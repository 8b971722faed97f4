"""A fuzzer over every sub-command's options: hostile values (out of range, wrong type, empty, huge,
non-finite, a folder, a symlink loop, a dangling link, an unreadable file, a FIFO) for every option argparse knows,
run in-process through :func:`isanet.cli.main`. Each run exits 0 or ends in one ``error:`` line (argparse's
usage lines aside), never a traceback, within a time and memory bound; a refusal exits 2, the usage status, since
no example gets as far as the work (where a failure would exit 1).

Every example gives the command an input it cannot use (a hostile path, a zoo name that does not exist) or,
for a command without one, an output the guard refuses, so that no example starts real work (a training, a
download, a full-size benchmark); what is fuzzed is the checking, which is all that runs before the work.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isanet.cli import build_parser, leaf_commands, main
from isanet.cli.options import INPUT_MARK, OUTPUT_MARK

COMMANDS = leaf_commands(build_parser())
SECONDS_PER_RUN = 30
MAX_RSS_GIB = 6
WORDS = ["", " ", "0", "-1", "1", "-0", "1e309", "nan", "inf", "-inf", "abc", "99999999999999999999", "8193",
         "0.5", "1x0", "100000x100000", "\x00", "é", "--"]
BAD_NAMES = ["", "nope", "isanet_r50-d8_nope", "123"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> list[str]:
    """Paths no command can use as its input: missing, a folder, a loop, a dangling link, unreadable, empty."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "folder").mkdir()
    (root / "loop").symlink_to(root / "loop")
    (root / "dangling.png").symlink_to(root / "missing.png")
    unreadable = root / "unreadable.pth"
    unreadable.write_bytes(b"\x80 not a checkpoint")
    unreadable.chmod(0)
    (root / "empty.png").write_bytes(b"")
    os.mkfifo(root / "fifo.png")  # opened as a file, it would wait for a writer for ever
    return [str(root / name) for name in ("missing.png", "folder", "loop", "dangling.png", "unreadable.pth",
                                          "empty.png", "fifo.png")]


def values(action: argparse.Action, hostile: list[str]) -> st.SearchStrategy[list[str]]:
    """The values one option (or positional) gets: its choices or hostile words, as many as its nargs takes."""
    pool = list(action.choices or ()) + WORDS + hostile
    count = {None: 1, "?": 1, "+": 2, "*": 2}.get(action.nargs, action.nargs)
    return st.lists(st.sampled_from(pool), min_size=count, max_size=count)


def refused_outputs(action: argparse.Action, hostile: list[str]) -> list[str]:
    """Outputs the guard must refuse: a file where a folder is meant (or the reverse), links, a user's file."""
    folder_kind = getattr(action, OUTPUT_MARK).kind == "dir"
    return [path for path in hostile if Path(path).name in (
        ("unreadable.pth", "empty.png", "loop") if folder_kind else ("folder", "loop", "dangling.png", "empty.png"))]


def argv_strategy(words: tuple[str, ...], hostile: list[str]) -> st.SearchStrategy[list[str]]:
    parser = COMMANDS[words]

    actions = [action for action in parser._actions if not isinstance(action, argparse._HelpAction)]
    required_paths = any(getattr(action, INPUT_MARK, False) and (action.required or not action.option_strings)
                         for action in actions)
    forced = None if required_paths else next((action for action in actions if hasattr(action, OUTPUT_MARK)), None)

    @st.composite
    def build(draw) -> list[str]:
        argv = list(words)
        for action in actions:
            if not action.option_strings:  # a positional: a hostile path if it is an input, else a bad name
                marked = getattr(action, INPUT_MARK, False)
                argv.append(draw(st.sampled_from(hostile if marked else BAD_NAMES + list(action.choices or ()))))
            elif hasattr(action, OUTPUT_MARK) and (action.required or action is forced):
                argv += [action.option_strings[0], draw(st.sampled_from(refused_outputs(action, hostile)))]
            elif getattr(action, INPUT_MARK, False) and action.required:
                argv += [action.option_strings[0], draw(st.sampled_from(hostile))]
            elif draw(st.booleans()):
                argv += [action.option_strings[0], *([] if action.nargs == 0 else draw(values(action, hostile)))]
        return argv

    return build()


class Timeout(Exception):
    pass


def run_bounded(argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` under a wall-clock alarm; its exit status and stderr."""
    def alarm(signum, frame):
        raise Timeout(f"isanet {' '.join(argv)} ran longer than {SECONDS_PER_RUN} s")

    err = io.StringIO()
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(SECONDS_PER_RUN)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exit_:
                code = exit_.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, err.getvalue()


@pytest.mark.parametrize("words", list(COMMANDS), ids=[" ".join(words) for words in COMMANDS])
def test_hostile_options_end_in_one_line_never_a_traceback(words, hostile, one_thread):
    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(argv_strategy(words, hostile))
    def check(argv: list[str]) -> None:
        code, err = run_bounded(argv)
        assert "Traceback" not in err, (argv, err)
        errors = [line for line in err.splitlines() if ": error: " in line]
        if code != 0:
            assert code == 2 and len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], (argv, err)
        assert len([line for line in err.splitlines() if line.startswith("warning")]) <= 3, (argv, err)

    check()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < MAX_RSS_GIB * 2**20  # kB on Linux
    assert not list(Path.cwd().glob(".isanet-probe-*"))
