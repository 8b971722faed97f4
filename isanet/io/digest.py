"""sha256 digests, the one place the kit hashes anything: of bytes and files (a download, a checkpoint read)
and of tensors (exact weights: a parity fixture's, a training's replicas and resumes).

A file digest is what OpenMMLab's weight names carry the first 8 hex of; a tensor digest names the weights
themselves, independent of how a file stored them (pickle protocol, zip layout, meta).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping

import torch

CHUNK_BYTES = 1 << 20


def sha256_hex(chunks: Iterable[bytes]) -> str:
    """The hex sha256 of ``chunks`` taken one after another (a file streamed in pieces hashes as a whole)."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike, limit: int | None = None) -> str:
    """The hex sha256 of the file at ``path``, read in 1 MiB pieces so a large checkpoint is never held whole;
    with ``limit``, of its first ``limit`` bytes only (the part of a growing log that a record covers)."""
    with open(path, "rb") as handle:
        if limit is None:
            return sha256_hex(iter(lambda: handle.read(CHUNK_BYTES), b""))
        return sha256_hex(_first_bytes(handle, limit))


def _first_bytes(handle, limit: int) -> Iterator[bytes]:
    while limit > 0 and (chunk := handle.read(min(CHUNK_BYTES, limit))):
        limit -= len(chunk)
        yield chunk


def state_dict_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a state dict's keys and raw tensor bytes, in sorted key order: names exact weights."""
    return sha256_hex(part for key in sorted(state)
                      for part in (key.encode(), state[key].detach().cpu().contiguous().numpy().tobytes()))
