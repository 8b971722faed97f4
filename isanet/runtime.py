"""Where and how the kit runs: one resolver for the ``device`` argument and one for the ``precision`` argument
of every command, notebook and function."""

from __future__ import annotations

import contextlib
from typing import Literal, get_args

import torch

#: The ``device`` choices of every command: ``auto`` takes CUDA when there is one.
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | None = "auto", argument: str = "device") -> str:
    """``"cpu"`` or ``"cuda"``: ``"auto"`` (or None) picks CUDA when there is one; an explicit ``"cuda"`` on a
    machine without it, or an unknown name, is a clear error naming ``argument`` (e.g. ``--device``)."""
    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in DEVICES:
        raise ValueError(f"{argument} {name!r}: use cpu, cuda or auto")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{argument} cuda: no CUDA device is available to this PyTorch; use cpu")
    return name


#: A precision name: what a model's forward passes run in.
Precision = Literal["fp32", "bf16", "fp16"]
#: The ``precision`` choices of every command, notebook and function that runs a model.
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
#: The torch dtype of each precision name.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); without it oneDNN emulates bf16 through
    fp32 conversions and autocast is slower than fp32, not faster."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX512", "AVX512_BF16", "AMX"):  # AVX2 and below have no bf16 dot products
        return False
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve_precision(precision: str | None, device: str | torch.device = "cpu",
                      argument: str = "precision") -> Precision:
    """The precision that will really run on ``device``: ``precision`` itself, or ``"fp32"`` with a one-line
    warning that says why (fp16 on CPU, bf16 on a CPU or GPU without it). Unknown names are a clear error."""
    import warnings

    precision = precision or "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"{argument} {precision!r}: use one of {', '.join(PRECISIONS)}")
    device_type = torch.device(device).type
    reason = None
    if precision == "fp16" and device_type != "cuda":
        reason = "fp16 autocast is for CUDA; on CPU use bf16"
    elif precision == "bf16" and device_type == "cpu" and not cpu_has_fast_bf16():
        reason = "this CPU has no native bf16 (AVX-512 BF16 or AMX), where bf16 would be slower than fp32"
    elif precision == "bf16" and device_type == "cuda" and not torch.cuda.is_bf16_supported():
        reason = "this GPU has no bf16; try fp16"
    if reason:
        warnings.warn(f"{argument} {precision} on {device_type}: {reason}; running in fp32", stacklevel=2)
        return "fp32"
    return precision


def autocast(precision: str, device: str | torch.device = "cpu") -> contextlib.AbstractContextManager:
    """The autocast context of an already resolved ``precision`` (see :func:`resolve_precision`); fp32 is a
    null context. Convolutions and matmuls then run in bf16/fp16; softmax, losses and BatchNorm statistics
    stay in fp32 (PyTorch's autocast op lists)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=DTYPES[precision])
