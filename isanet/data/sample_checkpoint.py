"""A random-weights checkpoint in exactly the published format: for running the evaluation path offline.

The real weights cannot be downloaded everywhere (this kit's CI has no internet), so the loading code is tested
on files written here: mmseg's layout (``meta`` + ``state_dict``), the zoo entry's key names, and the class names
and palette of its data set in ``meta["dataset_meta"]`` as a published file has them. The weights are
:func:`random_state_dict`'s, which also seed the parity test against mmseg and every test's small models.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from isanet.data.registry import dataset_class
from isanet.io.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from isanet.models.zoo import build_model, get_entry

RANDOM_NOTE = "RANDOM WEIGHTS written by"


def random_state_dict(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic random weights for ``model``: the same seed gives the same bits on every machine.

    Used for sample checkpoints and for the parity test against mmseg. Draws are uniform because
    ``torch.rand`` is bit-identical across CPU instruction sets while ``torch.randn`` is not. The scales keep
    a deep ResNet's activations sane: He-scaled convs, BN near identity with non-trivial statistics.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape: torch.Size, std: float) -> torch.Tensor:  # zero mean, standard deviation ``std``
        return (torch.rand(shape, generator=generator) * 2 - 1) * (std * 3**0.5)

    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(value)
        elif key.endswith("running_var") or (key.endswith(".weight") and value.dim() == 1):  # BN scale/var
            state[key] = 0.25 + 0.5 * torch.rand(value.shape, generator=generator)
        elif key.endswith("running_mean") or key.endswith(".bias"):
            state[key] = uniform(value.shape, 0.1)
        else:
            state[key] = uniform(value.shape, (2.0 / value[0].numel()) ** 0.5)
    return state


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
