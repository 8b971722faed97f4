"""Atomic writes: a reader never sees half a file, and an interrupted write leaves nothing behind.

Every file the kit writes (checkpoints, downloads, results JSON, the training log, sample data sets) goes
through :func:`atomic_path`: the content is written under a temporary name beside the target and renamed over
it only once complete (a rename within one folder is atomic), and recorded in the folder's ledger of the
kit's own outputs (:mod:`isanet.io.outputs`), so that a later run may replace it and nothing else: the rename
itself is refused when the name holds anything the kit did not write, so this is the one door every writer of
the kit goes through (``tests/test_writers.py`` finds every other write call and holds it to a list). The temporary
name is created by the caller with ordinary ``open``/``mkdir``, so files get the user's umask like any other file.

A temporary's name carries the writing process's id (``.NAME.isanet-tmp-PID-XXXXXXXX.tmp``): a process killed
mid-write (SIGKILL, power loss) leaves one behind, and the next write into that folder removes every
temporary whose writer is gone, so a killed save does not keep hundreds of megabytes forever.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from isanet.io.outputs import check_replaceable, record_output

TEMPORARY_MARK = ".isanet-tmp-"
#: ``.NAME.isanet-tmp-[PID-]XXXXXXXX.tmp|.part``: the writer's pid is absent from names of older versions.
#: A ``.part`` may carry ``torch.hub.download_url_to_file``'s own ``.<32 hex>.partial`` (it writes beside its
#: destination, which is our temporary) and is then just as stale when its writer is gone.
TEMPORARY_NAME = re.compile(r"^\..+" + re.escape(TEMPORARY_MARK)
                            + r"(?:(\d+)-)?[0-9a-f]{8}(?:\.tmp|\.part(?:\.[0-9a-f]{32}\.partial)?)$")
_STARTED = time.time()


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (this one always does)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True


def clean_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``folder`` left by writers that died mid-write (their pid is gone, or, for a
    name without one, the file predates this process); returns what was removed."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = TEMPORARY_NAME.match(entry.name)
        if not match:
            continue
        try:
            stale = not process_alive(int(match.group(1))) if match.group(1) else entry.lstat().st_mtime < _STARTED
            if not stale:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:  # another process cleaned it first, or it is not ours to remove
            continue
    return removed


def _put_in_place(temporary: Path, path: Path) -> None:
    """Rename ``temporary`` over ``path``, which may only be replaced when it is the kit's own (the guard's
    last check, raising :class:`~isanet.io.outputs.OutputError` otherwise). A folder is first renamed aside
    (a rename cannot replace a folder that holds files), then removed."""
    if not os.path.lexists(path):
        os.replace(temporary, path)
        return
    check_replaceable(path, "output")
    if not path.is_dir():
        os.replace(temporary, path)
        return
    aside = _temporary_name(path, ".tmp")
    os.replace(path, aside)
    try:
        os.replace(temporary, path)
    except BaseException:
        os.replace(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _temporary_name(path: Path, suffix: str) -> Path:
    """A fresh name beside ``path`` that :func:`clean_stale_temporaries` recognises (this process's id in it)."""
    return path.with_name(f".{path.name}{TEMPORARY_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


def _named(error: OSError, temporary: Path, path: Path) -> OSError:
    """``error`` of a write into ``temporary`` (or a file inside it) naming ``path`` instead, the name the user
    knows; a full disk said as ``no space left on <folder>``."""
    name = str(error.filename or temporary)
    name = str(path) + name[len(str(temporary)):] if name.startswith(str(temporary)) else name
    full = error.errno in (errno.ENOSPC, errno.EDQUOT)
    reason = f"no space left on {path.parent.absolute()}" if full else error.strerror
    return type(error)(error.errno, reason, name) if error.errno else error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; rename it over ``path`` when the block succeeds, remove it
    (file or folder) when it raises. The block creates the file or folder at the yielded path. An existing
    ``path`` is replaced only when it is the kit's own, unchanged (a folder: every file in it); otherwise the
    output guard's error is raised and nothing changes. Temporaries of dead writers in the same folder are
    removed first."""
    given, path = os.fspath(path), Path(path)
    if path.name in ("", ".", ".."):  # Path("") is "."; with_name would say "PosixPath('.') has an empty name"
        raise ValueError(f"cannot write {given!r}: it names no file (expected a file name)")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path.parent)
    temporary = _temporary_name(path, suffix)
    try:
        try:
            yield temporary
        except OSError as error:  # a failed write names the output, not its temporary
            raise _named(error, temporary, path) from None
        _put_in_place(temporary, path)
        record_output(path)
    finally:
        if temporary.is_dir() and not temporary.is_symlink():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)


def json_safe(value):
    """NaN/inf (a class absent from prediction and label, an mIoU with no class seen) become null: strict
    JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(data: dict, path: str | os.PathLike) -> Path:
    """Write ``data`` as strict, indented JSON to ``path`` atomically."""
    return write_text_atomic(json.dumps(json_safe(data), indent=1) + "\n", path)
