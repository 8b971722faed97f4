"""What C libraries print beside the kit's one line (libpng, libjpeg, OpenCV's logger, FFmpeg), kept off the
terminal and given back, so that a reader can put the gist into its own message or drop it.

These libraries write to file descriptor 2 directly, past Python's ``sys.stderr``, so neither ``warnings`` nor
``contextlib.redirect_stderr`` reaches them: a truncated PNG printed ``libpng error: IDAT: incorrect data check``
and an OpenCV ``[ WARN:0@0.7] global grfmt_png.cpp:793 ...`` line above ``isanet ...: error: cannot decode image``.
:func:`caught_output` points descriptor 2 at a temporary file around the one library call and reads it back;
``ISANET_DEBUG=1`` leaves the terminal as it is (the libraries' own words, for a bug report).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

#: What a library adds around its message: ``libpng error: ``, OpenCV's logger (``[ WARN:0@0.746] global FILE:LINE
#: FUNCTION ``), FFmpeg's ``[mov,mp4,... @ 0x55a8...] ``, OpenCV's ``imread_('PATH'): `` and its error's source
#: location (``OpenCV(5.0.0) /io/.../grfmt_avif.cpp:231: error: (-212:Parsing error)``).
NOISE = re.compile(r"^lib\w+ (error|warning): |^\[ ?\w+:\d+@[\d.]+\] global \S+ \S+ |^\[[^\]]+ @ 0x[0-9a-f]+\] |"
                   r"imread_\('[^']*'\): |OpenCV\([^)]*\) \S+: error: \([^)]*\)\s*")


@contextlib.contextmanager
def caught_output() -> Iterator[list[str]]:
    """Inside: what is written to file descriptor 2 is caught; the yielded list gets its lines when the block
    ends. Wrap one library call, never a loop that shows progress (a progress bar writes there too)."""
    lines: list[str] = []
    if os.environ.get("ISANET_DEBUG"):
        yield lines
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(line for line in sink.read().decode(errors="replace").splitlines() if line.strip())


def gist(lines: list[str]) -> str | None:
    """The last line a library printed, without its prefix (``IDAT: incorrect data check``), or None."""
    return NOISE.sub("", lines[-1]).strip() if lines else None
