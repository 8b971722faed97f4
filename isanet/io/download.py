"""Downloading published weights: hash-checked, never left half-written, reused when already verified.

OpenMMLab names every weight file ``<name>_<date>-<first 8 hex of its sha256>.pth``. The transfer itself is
``torch.hub.download_url_to_file(url, dst, hash_prefix=..., progress=...)``: it streams the file into a
``.partial`` temporary beside ``dst`` with a progress bar, hashes it on the way, refuses it (removing the
temporary) when its sha256 does not start with the prefix, and moves it to ``dst`` only once complete. It does
not compare the bytes received with ``Content-Length`` and has no timeout, so a transfer cut short is caught
by the hash alone: every download here therefore has a prefix, and one without is refused. What torch's
function lacks, and this module adds:

- a prefix is always checked: the given one, else the one in the file name (the zoo's even for a mirror);
- an existing file is hashed whole (:func:`~isanet.io.digest.file_sha256`) and reused without the network
  when it matches (torch downloads again every time);
- ``dst`` is one of the kit's atomic temporaries (:func:`~isanet.io.atomic.atomic_path`), so the partial file of
  a process killed mid-download carries the kit's temporary mark and the next write into the folder removes it
  (torch's own temporary would stay forever);
- every failure is one :class:`DownloadError` line naming the address (torch raises ``RuntimeError``,
  ``URLError`` or ``http.client.IncompleteRead`` as they come).
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.parse
from pathlib import Path

import torch

from isanet.io.atomic import atomic_path
from isanet.io.digest import file_sha256
from isanet.models.zoo import get_entry

#: torch's message for a hash mismatch: ``invalid hash value (expected "PREFIX", got "DIGEST")``.
TORCH_HASH_MISMATCH = re.compile(r'got "([0-9a-f]+)"')


class DownloadError(RuntimeError):
    """A download that failed or whose content does not match its published hash."""


def sha256_prefix_from_name(filename: str) -> str | None:
    """The 8-hex sha256 prefix OpenMMLab appends to weight file names (``...-981bd763.pth``), if any."""
    match = re.search(r"-([0-9a-f]{8})\.pth$", filename)
    return match.group(1) if match else None




def check_url(url: str) -> str:
    """``url`` when urllib can fetch it; else a ValueError naming it (before any download, so a typo is a usage
    error, not a failed download)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https", "file"):
        raise ValueError(f"--url {url}: expected an http://, https:// or file:// address")
    return url


def _reason(error: Exception) -> str:
    """Why a transfer failed, in words: urllib's ``<urlopen error [Errno 2] No such file...>`` is ``no such file
    or directory``, an HTTP error its status."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    reason = getattr(error, "reason", error)
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)


def download_url(url: str, directory: str | os.PathLike, sha256_prefix: str | None = None,
                 progress: bool = True) -> Path:
    """Download ``url`` into ``directory`` under its own file name; verify the sha256 prefix (given, or taken
    from the file name); return the final path. An existing file with the right hash is reused."""
    filename = url.rstrip("/").rsplit("/", 1)[-1]
    expected = sha256_prefix or sha256_prefix_from_name(filename)
    if expected is None:
        raise ValueError(f"download of {url}: its file name carries no sha256 prefix (NAME-1234abcd.pth); pass "
                         "sha256_prefix, without which a corrupt or cut-short transfer could not be told apart")
    target = Path(directory) / filename
    if target.is_file() and file_sha256(target).startswith(expected):
        return target
    with atomic_path(target, suffix=".part") as temporary:
        try:
            torch.hub.download_url_to_file(url, str(temporary), hash_prefix=expected, progress=progress)
        except RuntimeError as error:  # the only RuntimeError torch raises here: the hash does not match
            got = TORCH_HASH_MISMATCH.search(str(error))
            received = got.group(1)[:8] if got else "?"
            raise DownloadError(f"download of {url} failed its hash check: sha256 {received}… does not match the "
                                f"expected prefix {expected}; the transfer was cut short, or the file is corrupt or "
                                "not the published one, and was not kept") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            raise DownloadError(f"download of {url} failed: {_reason(error)}") from None
    return target


def download(name: str, directory: str | os.PathLike, url: str | None = None, progress: bool = True) -> Path:
    """Download the published weights of zoo entry ``name`` into ``directory`` and verify them.

    ``url`` replaces the published address (a mirror, or a local server in tests); the expected hash is
    always the zoo's.
    """
    entry = get_entry(name)
    return download_url(url or entry.weights_url, directory, entry.sha256_prefix, progress)
