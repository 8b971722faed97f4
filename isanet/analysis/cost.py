"""Closed-form FLOPs of dense and interlaced attention, the formula that the attention bench measures.

*Interlaced Sparse Self-Attention for Semantic Segmentation*, Huang et al., arXiv:1907.12273,
https://arxiv.org/abs/1907.12273 (the complexity paragraph of its method section). The paper states the
affinity part, ``O((HW)^2 C)`` for dense attention against ``O(HW (P_h P_w + Q_h Q_w) C)`` for ISA; a real
block also pays its projections, linear in ``HW``, and ISA pays them twice (one block per step). Counting
both explains why ISA is *more* expensive on small maps and from which map size it is cheaper. The counts are
exactly those of ``torch.utils.flop_counter`` for the ``matmul`` kernel (a multiply-add is 2 FLOPs; 1x1
convolutions and the two attention matmuls; biases, BN, ReLU and softmax are not counted), so a formula and a
measurement can be compared digit for digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from isanet.models.efficient.base import PatternAttention
from isanet.models.isa import Partition


@dataclass(frozen=True)
class AttentionCost:
    """The FLOPs of one attention module on one ``h x w`` map, split into projections and affinity work."""

    projections: int  # the 1x1 convolutions: keys and queries (2 each), values, output
    affinity: int  # Q K^T and A V over every (query, key) pair the module forms

    @property
    def total(self) -> int:
        return self.projections + self.affinity


def projection_flops_per_pixel(channels: int, isa_channels: int) -> int:
    """One :class:`~isanet.models.attention.SelfAttentionBlock` per pixel: key and query each
    ``C -> d -> d``, value ``C -> C``, output ``C -> C`` (``C = channels``, ``d = isa_channels``)."""
    return 2 * (2 * (channels * isa_channels + isa_channels ** 2) + 2 * channels ** 2)


def attention_cost(method: str, height: int, width: int, channels: int = 512, isa_channels: int = 256,
                   down_factor: tuple[int, int] = (8, 8)) -> AttentionCost:
    """FLOPs of ``method`` ("dense" or "isa") on ``1 x channels x height x width``, ``matmul`` kernel.

    dense: ``hw`` pixels through one block, ``(hw)^2`` pairs. ISA: the padded ``HW`` pixels through two
    blocks, ``HW (glb_h glb_w + loc_h loc_w)`` pairs. Each pair costs ``2 (d + C)``: a ``d``-wide dot product
    for the affinity and a ``C``-wide weighted sum of values.
    """
    per_pair = 2 * (isa_channels + channels)
    per_pixel = projection_flops_per_pixel(channels, isa_channels)
    if method == "dense":
        pixels = height * width
        return AttentionCost(pixels * per_pixel, pixels * pixels * per_pair)
    if method == "isa":
        p = Partition(height, width, *down_factor)
        pixels = p.padded_h * p.padded_w
        pairs = pixels * (p.glb_h * p.glb_w + p.loc_h * p.loc_w)
        return AttentionCost(2 * pixels * per_pixel, pairs * per_pair)
    raise ValueError(f"method must be 'dense' or 'isa', got {method!r}")


def pattern_cost(module: PatternAttention, height: int, width: int, channels: int = 512,
                 isa_channels: int = 256) -> AttentionCost:
    """FLOPs of any efficient attention of notebook 06 (``matmul`` kernel) from its own geometry: one set of
    projections per hop (:meth:`~PatternAttention.relations`) over the map it projects (padded first where
    :meth:`~PatternAttention.padding` says so: ISA), and ``2 (d + C)`` per affinity entry it materialises
    (:meth:`~PatternAttention.affinity_entries`). For dense and ISA it is :func:`attention_cost`."""
    left, right, top, bottom = module.padding(height, width)
    pixels = (top + height + bottom) * (left + width + right)
    return AttentionCost(len(module.relations()) * pixels * projection_flops_per_pixel(channels, isa_channels),
                         module.affinity_entries(height, width) * 2 * (isa_channels + channels))


def break_even_side(channels: int = 512, isa_channels: int = 256, down_factor: tuple[int, int] = (8, 8),
                    max_side: int = 4096) -> int:
    """The smallest side ``n`` from which an ``n x n`` map costs fewer FLOPs with ISA than with dense
    attention, for every larger side too (padding makes the difference jump, so later sides are checked)."""
    cheaper = [attention_cost("isa", n, n, channels, isa_channels, down_factor).total
               < attention_cost("dense", n, n, channels, isa_channels, down_factor).total
               for n in range(1, max_side + 1)]
    if not cheaper[-1]:
        raise ValueError(f"ISA is not cheaper than dense attention at {max_side}x{max_side}: raise max_side")
    last_dearer = max((n for n, ok in enumerate(cheaper, start=1) if not ok), default=0)
    return last_dearer + 1


def break_even_estimate(channels: int = 512, isa_channels: int = 256, down_factor: tuple[int, int] = (8, 8)) -> float:
    """The side where the two costs meet if padding is ignored (``n`` divisible by the factor):
    ``n^2 (1 - 1/P) * pair = per_pixel + P * pair`` with ``P = loc_h * loc_w``, solved for ``n``."""
    blocks = down_factor[0] * down_factor[1]
    per_pair = 2 * (isa_channels + channels)
    per_pixel = projection_flops_per_pixel(channels, isa_channels)
    return math.sqrt((per_pixel + blocks * per_pair) / (per_pair * (1 - 1 / blocks)))
