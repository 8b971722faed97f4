"""Downloading published weights: streamed, hash-checked, and never left half-written.

OpenMMLab names every weight file ``<name>_<date>-<first 8 hex of its sha256>.pth``; we check the whole file's
sha256 against that prefix before the file appears under its final name (temporary file + rename), so an
interrupted or corrupted download leaves nothing behind that could be mistaken for a checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from isanet.io.atomic import atomic_path
from isanet.models.zoo import get_entry

CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A download that failed or whose content does not match its published hash."""


def sha256_prefix_from_name(filename: str) -> str | None:
    """The 8-hex sha256 prefix OpenMMLab appends to weight file names (``...-981bd763.pth``), if any."""
    match = re.search(r"-([0-9a-f]{8})\.pth$", filename)
    return match.group(1) if match else None


def download_url(url: str, directory: str | os.PathLike, sha256_prefix: str | None = None,
                 progress: bool = True, timeout: float = 60.0) -> Path:
    """Stream ``url`` into ``directory`` under its own file name; verify the sha256 prefix (given, or taken
    from the file name); return the final path. An existing file with the right hash is reused."""
    filename = url.rstrip("/").rsplit("/", 1)[-1]
    expected = sha256_prefix or sha256_prefix_from_name(filename)
    target = Path(directory) / filename
    if target.is_file() and (expected is None or file_sha256(target).startswith(expected)):
        return target
    with atomic_path(target, suffix=".part") as temporary:
        with temporary.open("wb") as out:
            digest = _stream(url, out, progress, timeout)
        if expected is not None and not digest.startswith(expected):
            raise DownloadError(f"download of {url}: sha256 {digest[:8]}… does not match the expected prefix "
                                f"{expected}; the file is corrupt or not the published one, and was not kept")
    return target


def _stream(url: str, out, progress: bool, timeout: float) -> str:
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
                      disable=not progress) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise DownloadError(f"download of {url}: connection closed after {received} of {total} bytes")
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"download of {url} failed: {error}") from None
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download(name: str, directory: str | os.PathLike, url: str | None = None, progress: bool = True) -> Path:
    """Download the published weights of zoo entry ``name`` into ``directory`` and verify them.

    ``url`` replaces the published address (a mirror, or a local server in tests); the expected hash is
    always the zoo's.
    """
    entry = get_entry(name)
    return download_url(url or entry.weights_url, directory, entry.sha256_prefix, progress)
