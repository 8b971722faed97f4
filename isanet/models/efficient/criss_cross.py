"""Criss-cross attention: each pixel reads its own row and its own column.

*CCNet: Criss-Cross Attention for Semantic Segmentation*, Huang et al., arXiv:1811.11721,
https://arxiv.org/abs/1811.11721. As in the paper's implementation, the column affinities leave the query
itself out (``-inf`` on the diagonal), so the query is counted once among its ``h + w - 1`` keys, and row and
column share one softmax. Unlike CCNet's module (a learned ``gamma`` times the context plus the input,
applied twice with shared weights: "recurrent" criss-cross), this module uses the projections of our dense
:class:`SelfAttentionBlock`, so it differs from dense attention only in its pattern. Two criss-cross layers
reach the whole map: a pixel's column, then the rows of those pixels.

There is no form of this pattern that ``scaled_dot_product_attention`` takes (every query has its own key
set), so with ``matmul`` and ``sdpa`` the affinities are computed explicitly: ``hw (h + w - 1)`` of them
instead of ``(hw)²``. Its fused form is ``kernel="flex"``: the union of the row and column patterns as one
``mask_mod`` (:mod:`isanet.models.efficient.flex`).
"""

from __future__ import annotations

import torch

from isanet.models.efficient.base import OneRelationAttention
from isanet.models.efficient.flex import Pattern, SameColumn, SameRow, Union
from isanet.models.layers import grid


class CrissCrossAttention(OneRelationAttention):
    """One criss-cross layer over ``N x C x H x W``; output has the input's shape."""

    uses_sdpa = False

    def grouped_forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        query, key, value = (t.reshape(n, height, width, -1) for t in self.relation.tokens(x))  # N x H x W x C
        scale = query.shape[-1] ** -0.5
        row = torch.einsum("nhwc,nhvc->nhwv", query, key) * scale  # N x H x W x W: keys of the query's row
        column = torch.einsum("nhwc,ngwc->nhwg", query, key) * scale  # N x H x W x H: keys of its column
        itself = torch.eye(height, dtype=torch.bool, device=x.device).view(1, height, 1, height)
        column = column.masked_fill(itself, float("-inf"))  # the query is already in its row
        weights = torch.softmax(torch.cat([row, column], dim=-1), dim=-1)  # N x H x W x (W + H)
        context = (torch.einsum("nhwv,nhvc->nhwc", weights[..., :width], value)
                   + torch.einsum("nhwg,ngwc->nhwc", weights[..., width:], value))  # N x H x W x C
        context = context.reshape(n, height * width, -1)  # N x H x W x C -> N x HW x C
        return self.relation.project(context, height, width)

    def hop_masks(self, height: int, width: int) -> list[torch.Tensor]:
        rows, cols = (t.flatten() for t in grid(height, width))
        return [(rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])]

    def flex_patterns(self) -> list[Pattern]:
        return [Union((SameRow(), SameColumn()))]

    def affinity_entries(self, height: int, width: int) -> int:
        return height * width * (height + width)  # the masked diagonal of the column block is stored too
