"""The attention explorer's model menu: random weights of an architecture, a sample-trained checkpoint, a chosen
checkpoint and every zoo checkpoint found on disk, each built only when picked (a menu of R-50s must not load
them all to show their names)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from isanet.io.checkpoint import load_model
from isanet.notebook.session import find_zoo_checkpoints, resolve_path


@dataclass
class ModelChoice:
    """One entry of the explorer's model menu: a label and how to build the model (lazily)."""

    label: str
    load: Callable[[], nn.Module]
    kind: str = "random"  # "random", "sample" or "zoo"
    path: Path | None = None


def model_choices(model_name: str, checkpoint: str | os.PathLike | None = None,
                  checkpoint_dir: str | os.PathLike | None = None,
                  sample_checkpoint: str | os.PathLike | None = None, seed: int = 0) -> list[ModelChoice]:
    """The models the explorer can show: random weights of ``model_name``'s architecture; a sample-trained
    checkpoint if that file exists; ``checkpoint`` if given; every zoo checkpoint found in ``checkpoint_dir``
    (default ``data/checkpoints``). Models are built only when picked."""
    from isanet.models.zoo import build_model, get_entry

    entry = get_entry(model_name)

    def random_model() -> nn.Module:
        torch.manual_seed(seed)
        return build_model(entry.name)

    def from_file(path: Path, name: str | None = None) -> Callable[[], nn.Module]:
        return lambda: load_model(path, name)

    choices = [ModelChoice(f"random weights ({entry.name}, seed {seed})", random_model, "random")]
    sample = resolve_path(sample_checkpoint)
    if sample is not None and sample.is_file():
        choices.append(ModelChoice(f"sample-trained: {sample.name}", from_file(sample), "sample", sample))
    chosen = resolve_path(checkpoint)
    if chosen is not None:
        if not chosen.is_file():
            raise FileNotFoundError(f"CHECKPOINT {chosen} does not exist (download one with `isanet download`)")
        choices.append(ModelChoice(f"checkpoint: {chosen.name}", from_file(chosen), "zoo", chosen))
    for name, path in find_zoo_checkpoints(checkpoint_dir).items():
        if chosen is None or path.resolve() != chosen.resolve():
            choices.append(ModelChoice(f"zoo: {name}", from_file(path, name), "zoo", path))
    return choices
