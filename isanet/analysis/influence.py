"""Influence, measured: how much each input pixel moves each output pixel of a real module, against the
weights-only *rollout* ``A_S @ A_L`` of ISA.

The rollout multiplies the two steps' softmax weights. It says how the two attentions route the *values*, but
it is not the module: the weights themselves depend on the input, and every :class:`SelfAttentionBlock` wraps
its attention in projections (``value_project`` before, a conv-BN-ReLU ``output_project`` after) whose ReLU
can switch a pixel's output off. The influence of pixel ``r`` on pixel ``p`` is the norm of the ``c x c``
Jacobian block

    ``influence[p, r] = || d y_p / d x_r ||_F``  (``y = module(x)``, Frobenius over the channel pair),

computed here exactly, with autograd, on a map small enough for the full ``chw x chw`` Jacobian. It is zero
wherever the module's pattern has no path from ``r`` to ``p``, and the correlation with the rollout says how
much of the module's real dependence the weights-only picture captures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from isanet.analysis.isa_matrices import attention_matrices
from isanet.models.efficient.isa_module import ISAModule
from isanet.models.layers import grid

#: The largest ``c * h * w`` whose full Jacobian is formed (its square is the number of entries).
MAX_JACOBIAN_SIZE = 4096


def jacobian_influence(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``hw x hw`` influence of a map-to-map ``module`` at the ``1 x c x h x w`` input ``x``: entry ``[p, r]``
    is ``||d y_p / d x_r||_F`` over the channels (rows: output pixels, columns: input pixels, row-major).

    The module must be in eval mode: BatchNorm in training mode normalises with batch statistics, which
    couples every pixel with every other and would show up as influence that no attention pattern explains.
    """
    if module.training:
        raise ValueError("module: must be in eval mode (BatchNorm in training mode couples every pixel)")
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"x: expected one 1 x c x h x w map, got shape {tuple(x.shape)}")
    _, channels, height, width = x.shape
    if channels * height * width > MAX_JACOBIAN_SIZE:
        raise ValueError(f"x: c*h*w = {channels * height * width} is over {MAX_JACOBIAN_SIZE}; the full Jacobian "
                         "would not be small")
    jacobian = torch.autograd.functional.jacobian(module, x, vectorize=True)  # 1 x c x h x w x 1 x c x h x w
    out_channels = jacobian.shape[1]
    pixels = height * width
    # -> c_out x hw (outputs) x c_in x hw (inputs): one c_out x c_in block per (output, input) pixel pair
    blocks = jacobian.reshape(out_channels, pixels, channels, pixels)
    return blocks.pow(2).sum(dim=(0, 2)).sqrt()  # hw x hw


def real_positions(module: ISAModule, height: int, width: int) -> torch.Tensor:
    """Row-major indices, in the padded ``Hp x Wp`` map, of the ``h x w`` real pixels (in row-major order)."""
    p = module.partition(height, width)
    rows, cols = grid(height, width)  # h x w each
    return ((rows + p.pad_top) * p.padded_w + cols + p.pad_left).flatten()  # h x w -> hw


def rollout(module: ISAModule, x: torch.Tensor) -> torch.Tensor:
    """``hw x hw`` weights-only two-hop map ``A_S @ A_L`` of ``module`` at ``x``, restricted to the real pixels
    (paths through padding positions included, as the module takes them)."""
    with torch.no_grad():
        a_long, a_short = attention_matrices(module.forward_with_attention(x).attention)
    real = real_positions(module, *x.shape[2:])
    return (a_short @ a_long)[real][:, real]  # HpWp x HpWp -> hw x hw


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of the entries of two same-shaped tensors."""
    if a.shape != b.shape:
        raise ValueError(f"b: shape {tuple(b.shape)} differs from a's {tuple(a.shape)}")
    stacked = torch.stack([a.flatten(), b.flatten()]).double()  # 2 x entries
    return torch.corrcoef(stacked)[0, 1].item()


@dataclass
class InfluenceReport:
    """The measured influence and the rollout of one ISA module on one map (both ``hw x hw``), and the
    Pearson correlation of their entries."""

    influence: torch.Tensor
    rollout: torch.Tensor
    correlation: float


def influence_vs_rollout(module: ISAModule, x: torch.Tensor) -> InfluenceReport:
    """:func:`jacobian_influence` of an ISA module next to its :func:`rollout`, and their correlation."""
    influence = jacobian_influence(module, x)
    weights = rollout(module, x).to(influence.dtype)
    return InfluenceReport(influence, weights, correlation(influence, weights))
