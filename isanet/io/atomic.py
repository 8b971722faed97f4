"""Atomic writes: a reader never sees half a file, and an interrupted write leaves nothing behind.

Every file the kit writes (checkpoints, downloads, results JSON, the training log, sample data sets) goes
through :func:`atomic_path`: the content is written under a temporary name beside the target and renamed over
it only once complete (a rename within one folder is atomic). The temporary name is created by the caller
with ordinary ``open``/``mkdir``, so files get the user's umask like any other file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

TEMPORARY_MARK = ".isanet-tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; rename it over ``path`` when the block succeeds, remove it
    (file or folder) when it raises. The block creates the file or folder at the yielded path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}{TEMPORARY_MARK}{uuid.uuid4().hex[:8]}{suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
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
