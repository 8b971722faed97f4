"""Axial attention: attention along the rows, then along the columns.

*Axial Attention in Multidimensional Transformers*, Ho et al., arXiv:1912.12180, https://arxiv.org/abs/1912.12180.
A row hop (each pixel reads its row) followed by a column hop (each pixel reads its column), each with its own
projections (a :class:`SelfAttentionBlock`, like ISA's two relations), so one module reaches the whole map in
two hops at ``hw (h + w)`` affinities. Each hop is plain dense attention over a batch of rows (or columns), so
both kernels apply, the fused ``sdpa`` one included.
"""

from __future__ import annotations

import torch

from isanet.models.attention import Kernel, SelfAttentionBlock
from isanet.models.efficient.base import PatternAttention
from isanet.models.efficient.flex import Pattern, SameColumn, SameRow
from isanet.models.layers import grid, same_group


class AxialAttention(PatternAttention):
    """Row attention then column attention over ``N x C x H x W``; output has the input's shape."""

    def __init__(self, channels: int = 512, key_channels: int = 256, kernel: Kernel = "matmul"):
        super().__init__(kernel)
        self.row_relation = SelfAttentionBlock(channels, key_channels)
        self.column_relation = SelfAttentionBlock(channels, key_channels)

    def grouped_forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, height, width = x.shape
        # N x C x H x W -> N x H x C x W -> (N*H) x C x 1 x W: one map per row (all projections are 1x1)
        rows = x.permute(0, 2, 1, 3).reshape(n * height, c, 1, width)
        x = self.row_relation(rows, self.kernel).reshape(n, height, c, width).permute(0, 2, 1, 3)  # N x C x H x W
        # N x C x H x W -> N x W x C x H -> (N*W) x C x H x 1: one map per column
        columns = x.permute(0, 3, 1, 2).reshape(n * width, c, height, 1)
        out = self.column_relation(columns, self.kernel).reshape(n, width, c, height)  # N x W x C x H
        return out.permute(0, 2, 3, 1)  # -> N x C x H x W

    def relations(self) -> list[SelfAttentionBlock]:
        return [self.row_relation, self.column_relation]

    def hop_masks(self, height: int, width: int) -> list[torch.Tensor]:
        rows, cols = grid(height, width)
        return [same_group(rows), same_group(cols)]

    def flex_patterns(self) -> list[Pattern]:
        return [SameRow(), SameColumn()]

    def affinity_entries(self, height: int, width: int) -> int:
        return height * width * (width + height)
