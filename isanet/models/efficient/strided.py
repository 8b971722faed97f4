"""Strided sparse attention in 2-D: each pixel reads its own ``s x s`` block and the stride-``s`` lattice
through it, in one softmax.

*Generating Long Sequences with Sparse Transformers*, Child et al., arXiv:1904.10509,
https://arxiv.org/abs/1904.10509. The paper's factorised patterns give each position a *local* part and a
*strided* part: positions ``i, j`` with ``(i - j) mod s = 0`` (every ``s``-th position). Here both parts are
taken in 2-D: the local part is the query's ``s x s`` block (the paper's "fixed" local block), the strided
part the pixels with the same ``(row mod s, col mod s)``, and one head attends to their union (the paper's
"merged" variant), with the query itself counted once. That is our 2-D reading of the pattern, not code
from the paper (which masks causally over 1-D sequences, image rows flattened).

With ``s`` equal to ISA's ``down_factor`` the two parts are exactly ISA's short-range block and long-range
group (without ISA's symmetric padding): ISA applies them one after the other with two sets of projections,
this module at once with one. The map is zero-padded at the bottom/right to whole blocks and padded keys
are masked. Each query has its own key set, so ``sdpa`` does not apply: with ``matmul`` and ``sdpa`` the
affinities are explicit. Its fused form is ``kernel="flex"``: block and lattice as one ``mask_mod`` over the
unpadded map (:mod:`isanet.models.efficient.flex`).
"""

from __future__ import annotations

import math

import torch

from isanet.models.attention import Kernel
from isanet.models.efficient.base import OneRelationAttention
from isanet.models.efficient.flex import Pattern, SameCell, SameOffset, Union
from isanet.models.efficient.window import from_blocks, pad_tokens, to_blocks
from isanet.models.layers import grid


def blocks_to_lattice(t: torch.Tensor, n: int, blocks_h: int, blocks_w: int, stride: int) -> torch.Tensor:
    """Block order ``(N * gh * gw) x s² x C`` -> lattice order ``(N * s²) x (gh * gw) x C``: one row per
    lattice (pixels of one in-block offset), its members ordered by block."""
    c = t.shape[-1]
    # (N*gh*gw) x s² x C -> N x gh x gw x s² x C -> N x s² x gh x gw x C
    t = t.reshape(n, blocks_h, blocks_w, stride * stride, c).permute(0, 3, 1, 2, 4)
    return t.reshape(n * stride * stride, blocks_h * blocks_w, c)  # -> (N*s²) x (gh*gw) x C


def lattice_to_blocks(t: torch.Tensor, n: int, blocks_h: int, blocks_w: int, stride: int) -> torch.Tensor:
    """Inverse of :func:`blocks_to_lattice`."""
    c = t.shape[-1]
    # (N*s²) x (gh*gw) x C -> N x s² x gh x gw x C -> N x gh x gw x s² x C
    t = t.reshape(n, stride * stride, blocks_h, blocks_w, c).permute(0, 2, 3, 1, 4)
    return t.reshape(n * blocks_h * blocks_w, stride * stride, c)  # -> (N*gh*gw) x s² x C


class StridedAttention(OneRelationAttention):
    """One layer of 2-D strided sparse attention (block + lattice, one softmax) over ``N x C x H x W``."""

    uses_sdpa = False

    def __init__(self, channels: int = 512, key_channels: int = 256, stride: int = 8, kernel: Kernel = "matmul"):
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        super().__init__(channels, key_channels, kernel)
        self.stride = stride
        self.cell = (stride, stride)

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The map padded at the bottom and right to whole ``s x s`` blocks."""
        return math.ceil(height / self.stride) * self.stride, math.ceil(width / self.stride) * self.stride

    def grouped_forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        s = self.stride
        hp, wp = self.padded_size(height, width)
        blocks_h, blocks_w = hp // s, wp // s
        pad = (0, hp - height, 0, wp - width)
        query, key, value = (to_blocks(pad_tokens(t, height, width, *pad), s)  # (N*gh*gw) x s² x C
                             for t in self.relation.tokens(x))
        lattice = [blocks_to_lattice(t, n, blocks_h, blocks_w, s) for t in (query, key, value)]  # (N*s²) x G x C
        real = torch.ones(1, height * width, 1, device=x.device)
        real = to_blocks(pad_tokens(real, height, width, *pad), s) > 0  # (gh*gw) x s² x 1: not padding
        real_lattice = blocks_to_lattice(real, 1, blocks_h, blocks_w, s)  # s² x G x 1
        scale = query.shape[-1] ** -0.5
        local = torch.matmul(query, key.transpose(1, 2)) * scale  # (N*gh*gw) x s² x s²
        local = local.masked_fill(~real.transpose(1, 2).repeat(n, 1, 1), float("-inf"))
        strided = torch.matmul(lattice[0], lattice[1].transpose(1, 2)) * scale  # (N*s²) x G x G
        keep = real_lattice.transpose(1, 2) & ~torch.eye(blocks_h * blocks_w, dtype=torch.bool, device=x.device)
        strided = strided.masked_fill(~keep.repeat(n, 1, 1), float("-inf"))  # the query is already local
        # Both parts per query in block order: (N*gh*gw) x s² x (s² + G), one softmax over the union.
        weights = torch.softmax(torch.cat([local, lattice_to_blocks(strided, n, blocks_h, blocks_w, s)], -1), -1)
        strided_weights = blocks_to_lattice(weights[..., s * s:], n, blocks_h, blocks_w, s)  # (N*s²) x G x G
        context = torch.matmul(weights[..., :s * s], value) + lattice_to_blocks(
            torch.matmul(strided_weights, lattice[2]), n, blocks_h, blocks_w, s)  # (N*gh*gw) x s² x C
        context = from_blocks(context, n, hp, wp, s)[:, :height, :width]  # N x H x W x C
        context = context.reshape(n, height * width, -1)  # N x H x W x C -> N x HW x C
        return self.relation.project(context, height, width)

    def hop_masks(self, height: int, width: int) -> list[torch.Tensor]:
        rows, cols = (t.flatten() for t in grid(height, width))
        s = self.stride
        same_block = (rows[:, None] // s == rows[None, :] // s) & (cols[:, None] // s == cols[None, :] // s)
        same_lattice = (rows[:, None] % s == rows[None, :] % s) & (cols[:, None] % s == cols[None, :] % s)
        return [same_block | same_lattice]

    def flex_patterns(self) -> list[Pattern]:
        return [Union((SameCell(self.stride, self.stride), SameOffset(self.stride, self.stride)))]

    def affinity_entries(self, height: int, width: int) -> int:
        s = self.stride
        padded_h, padded_w = self.padded_size(height, width)
        blocks = padded_h * padded_w // (s * s)
        return blocks * s * s * (s * s + blocks)
