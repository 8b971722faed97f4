"""How far one output is from another: the measures the tests, the benches and the GPU check all report.

One definition of each, so that a bound a test asserts (``max_relative_difference(ours, ref) <= 1e-5``) means
the same as the figure a benchmark prints beside it. Tensors are compared in float64 on the CPU: a bf16 output on
a GPU against a float32 reference on the CPU is then one subtraction, and the measure adds no rounding of its own.

* :func:`max_relative_difference` is ``max |a - b| / max |b|``: the error relative to the *largest* reference
  value (the largest logit), the parity tests' measure. Element-wise ``|a - b| / |b|`` would explode on the
  logits near zero, which every segmentation map has.
* :func:`pixel_agreement` is the share of pixels whose class (argmax over the channel axis) equals the
  reference's: what a change of precision or kernel does to the prediction a user sees.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: The floor of a reference's largest magnitude: an all-zero reference gives a huge ratio, never a division by 0.
TINY = 1e-30


def _pair(values: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both tensors in float64 on the CPU, or a ValueError naming the two shapes."""
    if values.shape != reference.shape:
        raise ValueError(f"values of shape {tuple(values.shape)} compared with a reference of shape "
                         f"{tuple(reference.shape)}: expected equal shapes")
    return values.detach().double().cpu(), reference.detach().double().cpu()


def max_abs_difference(values: torch.Tensor, reference: torch.Tensor) -> float:
    """``max |a - b|``: for quantities with a scale of their own (attention weights, each in [0, 1])."""
    values, reference = _pair(values, reference)
    return float((values - reference).abs().max())


def max_relative_difference(values: torch.Tensor, reference: torch.Tensor) -> float:
    """``max |a - b| / max |b|``: the largest error as a share of the largest reference value."""
    values, reference = _pair(values, reference)
    return float((values - reference).abs().max() / reference.abs().max().clamp_min(TINY))


def relative_norm_difference(values: torch.Tensor, reference: torch.Tensor) -> float:
    """``||a - b|| / ||b||`` (Frobenius): the error over the whole map, for kernels whose rounding spreads over
    every element (a compiled kernel against the reference path)."""
    values, reference = _pair(values, reference)
    return float((values - reference).norm() / reference.norm().clamp_min(TINY))


def pixel_agreement(logits: torch.Tensor, reference: torch.Tensor) -> float:
    """Share (0 to 1) of pixels whose class, the argmax over dimension 1 of ``N x classes x H x W`` logits, equals
    the reference's; exactly 1.0 only when every pixel agrees."""
    logits, reference = _pair(logits, reference)
    if logits.dim() < 2:
        raise ValueError(f"logits of shape {tuple(logits.shape)}: expected N x classes x ... (at least 2 dims)")
    return float((logits.argmax(1) == reference.argmax(1)).double().mean())


def max_relative_series_difference(values: Sequence[float], reference: Sequence[float]) -> float:
    """The largest ``|a - b| / |b|`` over two equally long series of scalars (the losses of two training runs,
    step by step; a loss is never near zero, so each step is its own scale)."""
    if len(values) != len(reference):
        raise ValueError(f"{len(values)} values compared with {len(reference)} reference values: expected as many")
    if not values:
        raise ValueError("values: expected at least one value, got an empty series")
    return max(abs(a - b) / max(abs(b), TINY) for a, b in zip(values, reference))
