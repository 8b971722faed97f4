"""Where the kit runs: one resolver for the ``device`` argument of every command, notebook and function."""

from __future__ import annotations

import torch


def resolve_device(name: str | None = "auto", argument: str = "device") -> str:
    """``"cpu"`` or ``"cuda"``: ``"auto"`` (or None) picks CUDA when there is one; an explicit ``"cuda"`` on a
    machine without it, or an unknown name, is a clear error naming ``argument`` (e.g. ``--device``)."""
    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise ValueError(f"{argument} {name!r}: use cpu, cuda or auto")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{argument} cuda: no CUDA device is available to this PyTorch; use cpu")
    return name
