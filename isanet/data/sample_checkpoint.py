"""A random-weights checkpoint in exactly the published format: for running the evaluation path offline.

The real weights cannot be downloaded everywhere (this kit's CI has no internet), so the loading code is tested
on files written here: mmseg's layout (``meta`` + ``state_dict``), the zoo entry's key names, and the class names
and palette of its data set in ``meta["dataset_meta"]`` as a published file has them.
"""

from __future__ import annotations

import os
from pathlib import Path

from isanet.data.build import dataset_class
from isanet.io.checkpoint import CheckpointError, random_state_dict, read_checkpoint, save_checkpoint
from isanet.models.zoo import build_model, get_entry

RANDOM_NOTE = "RANDOM WEIGHTS written by"


def is_random_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a random-weights sample checkpoint (:func:`save_random_checkpoint`), which may be
    rewritten; anything else (or an unreadable file) may hold trained weights and is never written over."""
    try:
        meta = read_checkpoint(path).get("meta") or {}
    except CheckpointError:
        return False
    return isinstance(meta, dict) and str(meta.get("note", "")).startswith(RANDOM_NOTE)


def save_random_checkpoint(name: str, path: str | os.PathLike, seed: int = 0, written_by: str = "isanet") -> Path:
    """A RANDOM-WEIGHTS checkpoint of zoo entry ``name`` in mmseg's format, with the class names and palette in
    its meta as a published file has them, so that the whole evaluation path runs without the real weights.
    It predicts nothing useful, and its meta says so (naming ``written_by``)."""
    entry = get_entry(name)
    model = build_model(entry.name)
    model.load_state_dict(random_state_dict(model, seed=seed))
    reader = dataset_class(entry.dataset)
    meta = {"note": f"{RANDOM_NOTE} {written_by}: not a trained model", "zoo_name": entry.name,
            "seed": seed,
            "dataset_meta": {"classes": list(reader.CLASSES), "palette": [list(c) for c in reader.PALETTE]}}
    return save_checkpoint(model, path, meta=meta)
