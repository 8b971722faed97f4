"""The one output guard: what the kit may write, decided before any work, and how it knows its own files.

**How the kit knows its own outputs.** Every file or folder written through :func:`isanet.io.atomic.atomic_path`
is recorded, once it is in place, in the ledger ``.isanet-outputs`` of the folder it was written into: one line
``SIZE<TAB>MTIME_NS<TAB>sha256:HEX<TAB>NAME`` per file (a folder written whole adds one line per file inside it,
``NAME/sub/file``), appended, so that concurrent writers do not lose each other's lines. A file is the kit's own
while its bytes still have the recorded sha256: a file the user edited, copied in or made with another tool is
not, and the kit never replaces it; a folder may be replaced only while every file in it is the kit's own, and
otherwise the refusal names the first file that is not. A file the kit appends to (the training log) is
recorded as ``prefix-sha256``: its first ``SIZE`` bytes are the recorded ones. Lines of older versions,
``SIZE<TAB>MTIME_NS<TAB>NAME``, still count by size and modification time; their folder lines (size ``-1``)
vouch for no file, so such a folder is kept. A ledger that is a symbolic link (or not a regular file) is
never followed, read or appended to: the files it would vouch for count as the user's. A sidecar ledger works
for every format alike and never changes the bytes a user gets.

**The guard.** :func:`check_output` is called for every marked output option of a command (see
:func:`isanet.cli.options.add_output`) before the command's work begins, and by the kit's own scripts for theirs.
It refuses, in one line naming the option: an empty name (which would mean the current folder); an output that
is one of the command's inputs or lies inside an input folder; an output that is itself a symlink to an
existing file; a file where a folder is meant or the reverse; a suffix the format does not match; an existing
file the kit did not write; a folder it cannot create files in. :func:`check_replaceable` is the check of one
name a command writes itself (``STEM_label.png``, ``index.html``, a sample data set's top folder), and
:func:`isanet.io.atomic.atomic_path` makes it again just before it renames anything over an existing name, so
that no writer of the kit can replace what it does not own.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from isanet.io.digest import file_sha256

#: The ledger of the kit's own outputs, one per folder written into.
LEDGER = ".isanet-outputs"
#: The size older versions recorded a folder with: a name only, which vouches for no file in it.
OLD_FOLDER_SIZE = -1
_DIGEST = re.compile(r"(?:prefix-)?sha256:[0-9a-f]{64}")


class OutputError(ValueError):
    """An output the command must not (or cannot) write, found before the work."""


@dataclass(frozen=True)
class Record:
    """One ledger line: the size and modification time at the write, and the sha256 of the file's bytes
    (``prefix-sha256:``: of its first ``size`` bytes; None on a line of an older version)."""

    size: int
    mtime_ns: int
    digest: str | None

    def matches(self, path: Path) -> bool:
        """Whether the regular file ``path`` still holds what this record says the kit wrote."""
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            return False
        if self.digest is None:
            return (info.st_size, info.st_mtime_ns) == (self.size, self.mtime_ns)
        kind, _, hexdigest = self.digest.partition(":")
        if info.st_size < self.size or (kind == "sha256" and info.st_size != self.size):
            return False
        return file_sha256(path, limit=self.size) == hexdigest


def _open_ledger(folder: Path, flags: int) -> int:
    """The ledger's descriptor, never through a symbolic link and never a FIFO or device (OSError otherwise)."""
    path = folder / LEDGER
    if path.is_symlink():  # O_NOFOLLOW below is the race-free check; this one also holds where it is missing
        raise OSError(f"{path} is a symbolic link")
    handle = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), 0o644)
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        raise OSError(f"{path} is not a regular file")
    return handle


def read_ledger(folder: str | os.PathLike) -> dict[str, Record]:
    """The newest record of each name in ``folder``'s ledger (names relative to ``folder``); empty when there is
    no ledger, or it cannot be read as one (a symbolic link is never followed)."""
    try:
        handle = _open_ledger(Path(folder), os.O_RDONLY)
    except OSError:
        return {}
    with os.fdopen(handle, "rb") as ledger:
        text = ledger.read().decode("utf-8", errors="replace")
    records = {}
    for line in text.splitlines():
        parts = line.split("\t", 3)
        try:
            if len(parts) == 4 and _DIGEST.fullmatch(parts[2]):
                records[parts[3]] = Record(int(parts[0]), int(parts[1]), parts[2])
            elif len(parts) >= 3:  # an older version's line: the name is everything after the second tab
                records[line.split("\t", 2)[2]] = Record(int(parts[0]), int(parts[1]), None)
        except ValueError:  # a line cut short by a writer that was killed
            continue
    return records


def _files_under(folder: Path) -> Iterable[Path]:
    """Every entry under ``folder`` that is not a folder (symbolic links included, never followed), ledgers
    left out; a subfolder that cannot be listed is yielded itself, so that it is never taken for empty."""
    unreadable: list[Path] = []
    for root, folders, files in os.walk(folder, onerror=lambda error: unreadable.append(Path(error.filename))):
        yield from (Path(root, name) for name in folders if Path(root, name).is_symlink())
        yield from (Path(root, name) for name in files if name != LEDGER)
    yield from unreadable


def _line(path: Path, name: str, appendable: bool) -> str:
    info = path.lstat()
    digest = file_sha256(path, limit=info.st_size)
    return f"{info.st_size}\t{info.st_mtime_ns}\t{'prefix-' if appendable else ''}sha256:{digest}\t{name}\n"


def record_output(path: str | os.PathLike, *, appendable: bool = False) -> None:
    """Add ``path`` (just written by the kit: a file, or a folder and every file in it) to the ledger of its
    folder. ``appendable``: the kit will append to the file (its log), so later bytes after these are its own
    too. A ledger that cannot be written (a symbolic link, a read-only folder) only means the file will count as
    the user's, never replaced, so that is not an error."""
    path = Path(path)
    try:
        if path.is_dir():
            text = "".join(_line(file, file.relative_to(path.parent).as_posix(), False)
                           for file in _files_under(path) if file.is_file() and not file.is_symlink())
        else:
            text = _line(path, path.name, appendable)
        data = text.encode("utf-8")
        handle = _open_ledger(path.parent, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            while data:
                data = data[os.write(handle, data):]
        finally:
            os.close(handle)
    except OSError:
        pass


class _Ledgers:
    """The ledgers of the folders above some paths, each read once (a folder check reads hundreds of names)."""

    def __init__(self) -> None:
        self.read: dict[Path, dict[str, Record]] = {}

    def of(self, folder: Path) -> dict[str, Record]:
        if folder not in self.read:
            self.read[folder] = read_ledger(folder)
        return self.read[folder]

    def why_not_kit(self, path: Path) -> str | None:
        """None when ``path`` (not a folder) is a file the kit wrote and nobody changed since; else why not, in
        words. The nearest folder above it whose ledger names it decides (its own folder's first)."""
        if path.is_symlink():
            return "a symbolic link"
        older = None
        for folder in path.parents:
            name = path.relative_to(folder).as_posix()
            record = self.of(folder).get(name)
            if record is not None:
                try:
                    return None if record.matches(path) else f"changed since its record in {folder / LEDGER}"
                except OSError as error:
                    return f"cannot be read ({(error.strerror or str(error)).lower()})"
            older = older or self._older_folder_line(folder, name)
        if older:
            return older
        ledger = path.parent / LEDGER
        if ledger.is_symlink() or (ledger.exists() and not ledger.is_file()):
            return f"its ledger {ledger} is not a regular file, and isanet never follows or reads such a ledger"
        return f"no record in {ledger}"

    def _older_folder_line(self, folder: Path, name: str) -> str | None:
        """Why a file under a folder that an older version recorded by name only is not vouched for."""
        for top in Path(name).parents[:-1]:  # the parents of a relative name end with "."
            record = self.of(folder).get(top.as_posix())
            if record is not None and record.size == OLD_FOLDER_SIZE:
                return (f"{folder / LEDGER} has only an older isanet's line for the folder {top}, which vouches for "
                        "no file in it")
        return None


def foreign_files(path: str | os.PathLike) -> list[tuple[Path, str]]:
    """What replacing ``path`` would lose of the user's: ``(file, why it is not the kit's)`` for ``path`` itself
    (a file or link), or for every file under it (a folder, read without following links). Empty when ``path``
    does not exist, is the kit's own and unchanged, or is a folder holding only such files (or none)."""
    path = Path(os.path.abspath(path))
    ledgers = _Ledgers()
    if path.is_dir() and not path.is_symlink():
        found = ((file, ledgers.why_not_kit(file)) for file in sorted(_files_under(path)))
    else:
        found = [(path, ledgers.why_not_kit(path))] if os.path.lexists(path) else []
    return [(file, reason) for file, reason in found if reason is not None]


def written_by_kit(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file the kit wrote and nobody has changed since (by its ledger record)."""
    path = Path(path)
    return path.is_file() and not path.is_symlink() and not foreign_files(path)


def check_replaceable(path: str | os.PathLike, what: str) -> Path:
    """Refuse to replace an existing ``path`` that is not all the kit's own: a file it did not write (or that
    changed since), a symbolic link, or a folder holding any such file (named in the message, which names
    ``what`` first)."""
    path = Path(path)
    if path.is_symlink():
        raise OutputError(f"{what} {path}: already exists and was not written by isanet (a symbolic link, to "
                          f"{os.readlink(path)}); refusing to replace it: move it away or choose another name")
    foreign = foreign_files(path)
    if foreign and path.is_dir():
        (first, reason), more = foreign[0], len(foreign) - 1
        others = f" and {more} more file{'s' if more > 1 else ''}" if more else ""
        raise OutputError(f"{what} {path}: holds {first.relative_to(os.path.abspath(path))}{others}, which isanet "
                          f"did not write ({reason}); refusing to replace the folder and lose "
                          f"{'them' if more else 'it'}: move {'them' if more else 'it'} away or choose another "
                          "folder")
    if foreign:
        raise OutputError(f"{what} {path}: already exists and was not written by isanet ({foreign[0][1]}); "
                          "refusing to replace it: move it away or choose another name")
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
    """The output guard (see the module docstring): returns ``path`` resolved, or raises :class:`OutputError`.
    Give ``path`` as the user typed it: ``Path("")`` is already ``.``, the current folder."""
    if not os.fspath(path).strip():
        raise OutputError(f"{option}: expected a {'folder' if kind == 'dir' else 'file'} name, got an empty one "
                          "(it would mean the current folder; write . for that)")
    path = Path(path)
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
