"""The attention explorer's model menu: the shipped teaching model first (its attention learnt something a
learner can check), random weights, a chosen checkpoint and every zoo checkpoint found on disk, each built only
when picked (a menu of R-50s must not load them all to show their names)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from isanet.io.checkpoint import load_model
from isanet.notebook.session import find_zoo_checkpoints, resolve_path
from isanet.notebook.teaching import random_copy, teaching_checkpoint

TEACHING_LABEL = "teaching model (ISA, trained on the synthetic context task)"
#: What a page or panel of the teaching model must say: it learnt one synthetic task and nothing else.
TEACHING_NOTE = ("SYNTHETIC context task only: this model learnt to read an object's team from the beacon's "
                 "colour in the context scenes; on any other picture its maps show that habit, not real content.")


@dataclass
class ModelChoice:
    """One entry of the explorer's model menu: a label and how to build the model (lazily)."""

    label: str
    load: Callable[[], nn.Module]
    kind: str = "random"  # "teaching", "random" or "zoo"
    path: Path | None = None
    note: str = ""  # what a standalone page of this model must say beside its maps


def teaching_choice() -> ModelChoice:
    """The shipped teaching model (:func:`isanet.notebook.teaching.teaching_checkpoint`) as a menu entry."""
    path = teaching_checkpoint()
    return ModelChoice(TEACHING_LABEL, lambda: load_model(path), "teaching", path, TEACHING_NOTE)


def model_choices(model_name: str, checkpoint: str | os.PathLike | None = None,
                  checkpoint_dir: str | os.PathLike | None = None, seed: int = 0) -> list[ModelChoice]:
    """The models the explorer can show, in this order: the teaching model; the teaching architecture at
    random weights (the baseline that shows what training changed); random weights of ``model_name``'s
    architecture; ``checkpoint`` if given; every zoo checkpoint found in ``checkpoint_dir`` (default
    ``data/checkpoints``). Models are built only when picked."""
    from isanet.models.zoo import build_model, get_entry

    entry = get_entry(model_name)
    teaching = teaching_choice()

    def random_model() -> nn.Module:
        torch.manual_seed(seed)
        return build_model(entry.name)

    def from_file(path: Path, name: str | None = None) -> Callable[[], nn.Module]:
        return lambda: load_model(path, name)

    choices = [teaching,
               ModelChoice(f"random weights (the teaching architecture, seed {seed})",
                           lambda: random_copy(teaching.load(), seed=seed), "random"),
               ModelChoice(f"random weights ({entry.name}, seed {seed})", random_model, "random")]
    chosen = resolve_path(checkpoint)
    if chosen is not None:
        if not chosen.is_file():
            raise FileNotFoundError(f"CHECKPOINT {chosen} does not exist (download one with `isanet download`)")
        choices.append(ModelChoice(f"checkpoint: {chosen.name}", from_file(chosen), "zoo", chosen))
    for name, path in find_zoo_checkpoints(checkpoint_dir).items():
        if chosen is None or path.resolve() != chosen.resolve():
            choices.append(ModelChoice(f"zoo: {name}", from_file(path, name), "zoo", path))
    return choices
