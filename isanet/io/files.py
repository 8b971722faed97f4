"""What a path the user gave is, in words: the one check that a file the kit reads is a regular file.

Opening a FIFO blocks until something writes to it, and ``/dev/zero`` never ends, so a reader that only asked
"is it a file?" would hang or answer "no such file" about a path that plainly exists. Every reader of a user's
file (images, checkpoints, the folder data set's listing) asks :func:`not_a_regular_file` first and names the
path with what it really is: a broken or looping symlink, a FIFO, a device, a socket.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

#: What a path is, by the file type bits of its ``stat`` (a link followed), for everything but a regular file.
KINDS = ((stat.S_ISDIR, "is a folder"), (stat.S_ISFIFO, "not a regular file (a FIFO)"),
         (stat.S_ISCHR, "not a regular file (a device)"), (stat.S_ISBLK, "not a regular file (a device)"),
         (stat.S_ISSOCK, "not a regular file (a socket)"))


def not_a_regular_file(path: str | os.PathLike) -> str | None:
    """None when ``path`` is a regular file (or a link to one); else what it is, in a few words for a message
    (``"a broken symlink (to x.png, which does not exist)"``, ``"not a regular file (a FIFO)"``)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symlink loop"
        if error.errno == errno.ENOENT and path.is_symlink():
            return f"a broken symlink (to {os.readlink(path)}, which does not exist)"
        return "no such file" if error.errno == errno.ENOENT else (error.strerror or str(error)).lower()
    if stat.S_ISREG(mode):
        return None
    return next((words for test, words in KINDS if test(mode)), "not a regular file")
