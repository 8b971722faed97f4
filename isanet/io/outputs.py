"""The one output guard: what the kit may write, decided before any work, and how it knows its own files.

**How the kit knows its own outputs.** Every file or folder written through :func:`isanet.io.atomic.atomic_path`
is recorded, once it is in place, in the folder's ledger ``.isanet-outputs``: one line ``SIZE<TAB>MTIME_NS<TAB>NAME``
per write (appended, so concurrent writers do not lose each other's lines). A file is the kit's own while its
size and modification time are still the recorded ones; a file the user edited, copied in or made with another
tool is not, and the kit never replaces it. A sidecar ledger works for every format alike (checkpoints, PNG,
JSON, HTML, ONNX, MP4) and never changes the bytes a user gets.

**The guard.** :func:`check_output` is called for every marked output option of a command (see
:func:`isanet.cli.options.add_output`) before the command's work begins. It resolves the path through
symlinks and refuses, in one line naming the option: an output that is one of the command's inputs or lies
inside an input folder (a data set, a picture folder); an output that is itself a symlink to an existing file;
a file where a folder is meant or the reverse; a suffix the format does not match; an existing file the kit did
not write; a folder it cannot create files in. :func:`check_replaceable` is the same last check for the files a
command names itself (``isanet predict``'s ``STEM_label.png``), made just before each is written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

#: The ledger of the kit's own outputs, one per folder written into.
LEDGER = ".isanet-outputs"
#: The size a folder is recorded with (its size and time change with its contents; its name is what counts).
FOLDER_SIZE = -1


class OutputError(ValueError):
    """An output the command must not (or cannot) write, found before the work."""


def _stat_key(path: Path) -> tuple[int, int]:
    """What a record holds: ``(size, mtime_ns)`` of a file, ``(FOLDER_SIZE, 0)`` of a folder."""
    info = path.stat()
    return (FOLDER_SIZE, 0) if path.is_dir() else (info.st_size, info.st_mtime_ns)


def record_output(path: str | os.PathLike) -> None:
    """Add ``path`` (just written by the kit) to its folder's ledger; a ledger that cannot be written only
    means the file will count as the user's (never replaced), so that failure is not an error."""
    path = Path(path)
    try:
        size, mtime = _stat_key(path)
        with (path.parent / LEDGER).open("a", encoding="utf-8") as ledger:
            ledger.write(f"{size}\t{mtime}\t{path.name}\n")
    except OSError:
        pass


def written_by_kit(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file (or folder) the kit wrote and nobody has changed since (its ledger line)."""
    path = Path(path)
    try:
        key = _stat_key(path)
        lines = (path.parent / LEDGER).read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    for line in reversed(lines):  # the newest record of the name counts
        size, mtime, name = (line.split("\t", 2) + ["", "", ""])[:3]
        if name == path.name:
            return size == str(FOLDER_SIZE) if key[0] == FOLDER_SIZE else (size, mtime) == tuple(map(str, key))
    return False


def check_replaceable(path: str | os.PathLike, what: str) -> Path:
    """Refuse to replace an existing ``path`` the kit did not write (``what`` names it in the message)."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not written_by_kit(path)):
        raise OutputError(f"{what} {path}: already exists and was not written by isanet (no record in "
                          f"{path.parent / LEDGER}); refusing to replace it: move it away or choose another name")
    return path


def _resolve(path: Path, option: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        raise OutputError(f"{option} {path}: is a symlink loop") from None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_inputs(resolved: Path, option: str, path: Path, inputs: Iterable[tuple[str, str | os.PathLike]]) -> None:
    """Refuse ``resolved`` when it is one of ``inputs`` (``(option, path)`` pairs) or lies in an input folder."""
    for input_option, source in inputs:
        source_path = Path(source)
        if not source_path.exists():
            continue
        target = _resolve(source_path, input_option)
        if resolved == target:
            raise OutputError(f"{option} {path}: is also an input of this command ({input_option} {source}); "
                              "it would be overwritten: write the result elsewhere")
        if target.is_dir() and _inside(resolved, target):
            raise OutputError(f"{option} {path}: lies inside the input folder {input_option} {source}; "
                              "write the result outside it")


def check_output(path: str | os.PathLike, option: str, *, kind: str = "file", suffixes: tuple[str, ...] = (),
                 inputs: Iterable[tuple[str, str | os.PathLike]] = ()) -> Path:
    """The output guard (see the module docstring): returns ``path`` resolved, or raises :class:`OutputError`."""
    path = Path(path)
    if not str(path).strip():
        raise OutputError(f"{option}: expected a {'folder' if kind == 'dir' else 'file'} name, got an empty one")
    resolved = _resolve(path, option)
    check_inputs(resolved, option, path, inputs)
    if path.is_symlink() and kind == "file":
        raise OutputError(f"{option} {path}: is a symbolic link (to {os.readlink(path)}); name the file itself")
    if kind == "dir" and resolved.exists() and not resolved.is_dir():
        raise OutputError(f"{option} {path}: exists and is not a folder")
    if kind == "file" and resolved.is_dir():
        raise OutputError(f"{option} {path}: is a folder; give a file name")
    if kind == "file":
        check_replaceable(resolved, option)
    nearest = resolved if resolved.is_dir() else resolved.parent
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    if not nearest.is_dir():
        raise OutputError(f"{option} {path}: cannot be created, {nearest} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=nearest, prefix=".isanet-probe-"):
            pass
    except OSError as error:
        raise OutputError(f"{option} {path}: cannot write in {nearest} "
                          f"({(error.strerror or str(error)).lower()})") from None
    if kind == "file" and suffixes and path.suffix.lower() not in suffixes:
        raise OutputError(f"{option} {path}: the format is taken from the suffix; expected "
                          f"{' or '.join(suffixes)}, got {path.suffix or 'none'}")
    return resolved
