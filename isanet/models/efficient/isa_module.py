"""ISA wired to its attention: two :class:`~isanet.models.attention.SelfAttentionBlock` steps on
:func:`isanet.models.isa.interlaced`, every kernel, and ISA as one of notebook 06's compared attentions.

*Interlaced Sparse Self-Attention for Semantic Segmentation*, Huang et al., arXiv:1907.12273,
https://arxiv.org/abs/1907.12273. The geometry and the forward pass are :mod:`isanet.models.isa`; this file adds
what a kernel needs: with ``matmul`` or ``sdpa`` each step is dense attention inside the regrouped maps; with
``flex`` the steps are the patterns "same in-block offset" and "same block" over the padded map, no regrouping
(:func:`~isanet.models.efficient.base.compute_hops` makes that choice for every attention module). ``ISAHead``
(the published head) calls :func:`interlaced_attention`; :class:`ISAModule` (the attention alone) is the same
two steps through :class:`~isanet.models.efficient.base.PatternAttention`'s forward.
"""

from __future__ import annotations

import torch

from isanet.models.attention import STEP_NAMES, Kernel, SelfAttentionBlock
from isanet.models.efficient.base import ROW_MAJOR, PatternAttention, compute_hops
from isanet.models.efficient.flex import FlexOptions, Pattern, SameCell, SameOffset
from isanet.models.isa import (
    ISAOutput,
    Partition,
    interlaced,
    interlaced_with_weights,
    long_range_group_ids,
    short_range_group_ids,
)
from isanet.models.layers import same_group


def isa_patterns(down_factor: tuple[int, int]) -> list[Pattern]:
    """ISA's two steps as patterns over the padded map: the same in-block offset (long range), then the same
    block (short range)."""
    return [SameOffset(*down_factor), SameCell(*down_factor)]


def grouped_isa(x: torch.Tensor, global_relation: SelfAttentionBlock, local_relation: SelfAttentionBlock,
                down_factor: tuple[int, int], kernel: Kernel = "matmul") -> torch.Tensor:
    """ISA's grouped form (``matmul``, ``sdpa``): each relation is dense attention inside the regrouped maps."""
    return interlaced(x, tuple(down_factor), lambda groups: global_relation(groups, kernel, "long_range"),
                      lambda blocks: local_relation(blocks, kernel, "short_range"))[0]


def interlaced_attention(x: torch.Tensor, global_relation: SelfAttentionBlock, local_relation: SelfAttentionBlock,
                         down_factor: tuple[int, int], kernel: Kernel = "matmul",
                         options: FlexOptions = ROW_MAJOR) -> torch.Tensor:
    """The ISA operation on ``n x c x h x w`` with any kernel: the context, the same shape as ``x``. ``options``
    lists the tokens for the flex kernel (row-major unless configured)."""
    down_factor = tuple(down_factor)
    padding = Partition(*x.shape[2:], *down_factor).padding
    return compute_hops(x, [global_relation, local_relation], kernel,
                        lambda x: grouped_isa(x, global_relation, local_relation, down_factor, kernel),
                        isa_patterns(down_factor), padding, options, down_factor, STEP_NAMES)


def interlaced_attention_with_weights(x: torch.Tensor, global_relation: SelfAttentionBlock,
                                      local_relation: SelfAttentionBlock, down_factor: tuple[int, int]) -> ISAOutput:
    """:func:`interlaced_attention` with the explicit kernel, and the weights of both stages."""
    return interlaced_with_weights(x, tuple(down_factor),
                                   lambda groups: global_relation.forward_with_attention(groups, "long_range"),
                                   lambda blocks: local_relation.forward_with_attention(blocks, "short_range"))


class ISAModule(PatternAttention):
    """The attention part of ISA alone (both relations with their projections), for measurement and for the
    pattern comparison of notebook 06: two hops, long range then short range, over the padded map."""

    step_names = STEP_NAMES

    def __init__(self, channels: int = 512, isa_channels: int = 256, down_factor: tuple[int, int] = (8, 8),
                 kernel: Kernel = "matmul"):
        super().__init__(kernel)
        self.down_factor = self.cell = tuple(down_factor)
        self.global_relation = SelfAttentionBlock(channels, isa_channels)
        self.local_relation = SelfAttentionBlock(channels, isa_channels)

    def grouped_forward(self, x: torch.Tensor) -> torch.Tensor:
        return grouped_isa(x, self.global_relation, self.local_relation, self.down_factor, self.kernel)

    def forward_with_attention(self, x: torch.Tensor) -> ISAOutput:
        return interlaced_attention_with_weights(x, self.global_relation, self.local_relation, self.down_factor)

    def relations(self) -> list[SelfAttentionBlock]:
        return [self.global_relation, self.local_relation]

    def partition(self, height: int, width: int) -> Partition:
        return Partition(height, width, *self.down_factor)

    def padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        return self.partition(height, width).padding

    def hop_masks(self, height: int, width: int) -> list[torch.Tensor]:
        """Long range (same in-block offset) then short range (same block), over the padded map."""
        p = self.partition(height, width)
        return [same_group(long_range_group_ids(p)), same_group(short_range_group_ids(p))]

    def flex_patterns(self) -> list[Pattern]:
        return isa_patterns(self.down_factor)

    def affinity_entries(self, height: int, width: int) -> int:
        return self.partition(height, width).affinity_entries()[1]
