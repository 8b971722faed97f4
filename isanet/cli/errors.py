"""The exit-status contract of every ``isanet`` command, argparse's own convention carried past parsing.

* 0: the work was done.
* 2: a usage error, found before any work: a bad option value, or a named file or folder that is missing, of
  the wrong kind, unreadable or not what it should be. Argparse refuses what it can see in the text of an
  option; the rest is found by the command's checks (opening the checkpoint, the data root, the zoo entry),
  which run inside :func:`usage_checks`.
* 1: a failure during the work itself (a download whose hash differs, a file that cannot be written half-way,
  a prediction that failed).

Either way the user reads one line, ``isanet COMMAND: error: ...``, naming the option or the file, never a
traceback (set ``ISANET_DEBUG=1`` to see it anyway).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

#: Exit status of a usage error (argparse's own) and of a failure during the work.
USAGE, FAILURE = 2, 1

#: Errors that mean bad input or a failed step (a missing file, a wrong name, a corrupt checkpoint): the user
#: gets one line naming what is wrong instead of a traceback.
USER_ERRORS = (ValueError, KeyError, OSError, RuntimeError)


class UsageError(Exception):
    """A mistake in the command line, found by a command's checks before any work: exits :data:`USAGE`."""


@contextlib.contextmanager
def usage_checks(errors: tuple[type[BaseException], ...] = USER_ERRORS) -> Iterator[None]:
    """Inside: the checks of a command's options (files opened, names looked up, outputs probed). Any of
    ``errors`` raised there is a usage error, re-raised as :class:`UsageError` with its one-line message; a
    step that both checks and works (e.g. refuses with ValueError, fails to write with OSError) passes just
    its refusals."""
    try:
        yield
    except errors as error:
        raise UsageError(error_message(error)) from error


#: How the allocators say they ran out (torch's CPU and CUDA allocators, numpy), and the size they were asked for.
ALLOCATION_FAILED = re.compile(r"you tried to allocate (?P<bytes>\d+) bytes|(Tried|Unable) to allocate "
                               r"(?P<size>[\d.]+ [KMGTPE]?i?B)")


def error_message(error: BaseException) -> str:
    """One line for the user: an OSError's file and reason in words (its first arg is a bare errno number), an
    allocator's failure as what it means, else the error's own message."""
    if isinstance(error, OSError) and error.strerror:
        names = " -> ".join(str(name) for name in (error.filename, error.filename2) if name is not None)
        return f"{names}: {error.strerror.lower()}" if names else error.strerror.lower()
    message = str(error.args[0]) if error.args else repr(error)
    failed = ALLOCATION_FAILED.search(str(error))  # numpy's MemoryError keeps its words in str() alone
    if failed or isinstance(error, MemoryError):
        size = (f" of {_bytes(int(failed['bytes']))}" if failed and failed["bytes"] else
                f" of {failed['size']}" if failed else "")
        where = "GPU memory" if "CUDA" in message else "memory"
        return (f"not enough {where}: an allocation{size} failed; a smaller size or scale, or fewer windows or "
                "images at once")
    return message.splitlines()[0] if message.strip() else repr(error)


def _bytes(count: int) -> str:
    """``count`` bytes in the largest binary unit that keeps a whole number in front (``6.0 GiB``)."""
    power = min(max(count.bit_length() - 1, 0) // 10, 5)
    return f"{count / 1024**power:.1f} {('B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB')[power]}"
