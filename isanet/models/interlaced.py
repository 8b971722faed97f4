"""Interlaced Sparse Self-Attention: dense attention factorised into a long-range and a short-range step.

*Interlaced Sparse Self-Attention for Semantic Segmentation*, Huang et al., arXiv:1907.12273 (OCNet, IJCV 2021),
https://arxiv.org/abs/1907.12273. Matches mmsegmentation 1.2.2 ``mmseg/models/decode_heads/isa_head.py``
(``ISAHead.forward``: pad, two ``view``/``permute`` regroupings, crop) and openseg.pytorch's ``isa_block.py``.
In the paper's notation the block size ``(P_h, P_w)`` is ``down_factor = (loc_h, loc_w)`` here, and the number
of blocks ``(Q_h, Q_w)`` is ``(glb_h, glb_w)``.

For a feature map of ``h x w`` and ``down_factor = (loc_h, loc_w)`` the map is padded to a multiple of the
factor (symmetrically, the extra row/column going to the bottom/right) and cut into ``glb_h x glb_w`` blocks of
``loc_h x loc_w`` pixels. Padded row ``y`` is block row ``y // loc_h`` and in-block offset ``y % loc_h``.
Shapes here write the map as given ``h x w`` and the padded map ``Hp x Wp`` (``Partition.padded_h x padded_w``);
elsewhere in the kit ``H x W`` is the image.

1. Long range: the pixels with the same in-block offset form one group of ``glb_h * glb_w`` pixels spread
   over the whole map (one per block, stride ``loc``); dense attention runs inside each group.
2. Short range: the pixels of one block form one group of ``loc_h * loc_w`` neighbours; dense attention runs
   inside each block on the output of step 1.

Any pixel reaches any other in two hops (long range to the pixel with its own offset in the target's block,
then short range within that block), at an affinity cost of ``hw * (glb_h*glb_w + loc_h*loc_w)`` entries
instead of ``(hw)²``. The matrix view makes this exact: :func:`long_range_mask` ``L`` and
:func:`short_range_mask` ``S`` are the ``HpWp x HpWp`` relations of the two steps (block diagonal under
:func:`long_range_order` / :func:`short_range_order`), every entry of ``S @ L`` is 1 (one path per pair), and
:func:`attention_matrices` turns captured weights into ``A_L``, ``A_S`` with ``composed = A_S @ A_L``. They are
plain functions of a :class:`Partition`, for any code that needs ISA's sparsity pattern.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from isanet.models.flex import Pattern, SameCell, SameOffset
from isanet.models.patterns import PatternAttention, flex_relations
from isanet.models.self_attention import Kernel, SelfAttentionBlock


@dataclass(frozen=True)
class Partition:
    """The geometry of ISA on an ``height x width`` map: block counts and the symmetric padding."""

    height: int
    width: int
    loc_h: int = 8
    loc_w: int = 8

    def __post_init__(self) -> None:
        if min(self.height, self.width, self.loc_h, self.loc_w) < 1:
            raise ValueError(f"sizes and down_factor must be positive, got {self}")

    @property
    def glb_h(self) -> int:
        return math.ceil(self.height / self.loc_h)

    @property
    def glb_w(self) -> int:
        return math.ceil(self.width / self.loc_w)

    @property
    def padded_h(self) -> int:
        return self.glb_h * self.loc_h

    @property
    def padded_w(self) -> int:
        return self.glb_w * self.loc_w

    @property
    def pad_top(self) -> int:
        return (self.padded_h - self.height) // 2

    @property
    def pad_left(self) -> int:
        return (self.padded_w - self.width) // 2

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """``(left, right, top, bottom)`` as :func:`torch.nn.functional.pad` takes it."""
        pad_h, pad_w = self.padded_h - self.height, self.padded_w - self.width
        return self.pad_left, pad_w - self.pad_left, self.pad_top, pad_h - self.pad_top

    @property
    def num_long_range_groups(self) -> int:
        return self.loc_h * self.loc_w

    @property
    def num_short_range_groups(self) -> int:
        return self.glb_h * self.glb_w

    def block(self, y, x):
        """Block ``(row, col)`` of padded position ``(y, x)`` (ints or integer tensors)."""
        return y // self.loc_h, x // self.loc_w

    def offset(self, y, x):
        """In-block offset ``(row, col)`` of padded position ``(y, x)``."""
        return y % self.loc_h, x % self.loc_w

    def block_origin(self, y, x):
        """Padded ``(row, col)`` of the top-left pixel of the block that holds ``(y, x)``."""
        block_y, block_x = self.block(y, x)
        return block_y * self.loc_h, block_x * self.loc_w

    def long_range_group(self, y, x):
        """Long-range group of padded ``(y, x)``: its in-block offset, row-major. Also its index inside its
        short-range group (block)."""
        offset_y, offset_x = self.offset(y, x)
        return offset_y * self.loc_w + offset_x

    def short_range_group(self, y, x):
        """Short-range group (block) of padded ``(y, x)``, row-major. Also its index inside its long-range
        group."""
        block_y, block_x = self.block(y, x)
        return block_y * self.glb_w + block_x

    def affinity_entries(self) -> tuple[int, int]:
        """Number of affinity entries per image: ``(dense, isa)``. Dense counts the unpadded map."""
        pixels = self.padded_h * self.padded_w
        return (self.height * self.width) ** 2, pixels * (self.glb_h * self.glb_w + self.loc_h * self.loc_w)


def _padded_grid(partition: Partition) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(partition.padded_h).view(-1, 1).expand(-1, partition.padded_w)  # Hp -> Hp x 1 -> Hp x Wp
    cols = torch.arange(partition.padded_w).view(1, -1).expand(partition.padded_h, -1)  # Wp -> 1 x Wp -> Hp x Wp
    return rows, cols


def long_range_group_ids(partition: Partition) -> torch.Tensor:
    """``padded_h x padded_w`` map of each position's long-range group: its in-block offset, row-major."""
    return partition.long_range_group(*_padded_grid(partition))


def short_range_group_ids(partition: Partition) -> torch.Tensor:
    """``padded_h x padded_w`` map of each position's short-range group: its block, row-major.

    This is also the position's index *inside* its long-range group, and vice versa.
    """
    return partition.short_range_group(*_padded_grid(partition))


def pixel_groups(partition: Partition, row: int, col: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ``(row, col)`` coordinates (``K x 2``) of the long-range and short-range group of the pixel at
    unpadded ``(row, col)``, each in the order the attention weights use."""
    if not (0 <= row < partition.height and 0 <= col < partition.width):
        raise ValueError(f"pixel ({row}, {col}) is outside the {partition.height}x{partition.width} map")
    y, x = row + partition.pad_top, col + partition.pad_left
    coords = []
    for ids in (long_range_group_ids(partition), short_range_group_ids(partition)):
        # Row-major order of a group's members is exactly their member index (block id / in-block offset).
        flat = (ids == ids[y, x]).flatten().nonzero().squeeze(1)  # Hp x Wp -> HpWp -> K member positions
        coords.append(torch.stack([flat // partition.padded_w, flat % partition.padded_w], dim=1))
    return coords[0], coords[1]


def member_positions(partition: Partition) -> torch.Tensor:
    """``(loc_h*loc_w) x (glb_h*glb_w)`` flat padded position (row-major over ``padded_h x padded_w``) of the
    member with in-block offset ``o`` in block ``b``: the index ISA's two regroupings are built on.

    Row ``o`` lists long-range group ``o`` in its member order; column ``b`` lists block ``b`` in its member
    order. Flattened row-major it is the long-range order of all positions, column-major the short-range order.
    """
    p = partition
    offset_y, offset_x = torch.arange(p.loc_h), torch.arange(p.loc_w)
    block_y, block_x = torch.arange(p.glb_h), torch.arange(p.glb_w)
    rows = block_y.view(1, 1, -1, 1) * p.loc_h + offset_y.view(-1, 1, 1, 1)  # loc_h x 1 x glb_h x 1
    cols = block_x.view(1, 1, 1, -1) * p.loc_w + offset_x.view(1, -1, 1, 1)  # 1 x loc_w x 1 x glb_w
    # loc_h x loc_w x glb_h x glb_w -> (loc_h*loc_w) x (glb_h*glb_w)
    return (rows * p.padded_w + cols).reshape(p.num_long_range_groups, p.num_short_range_groups)


def long_range_mask(partition: Partition) -> torch.Tensor:
    """``HpWp x HpWp`` boolean relation of the long-range step over the padded map (row-major positions):
    ``mask[q, r]`` is True when ``q`` attends to ``r`` in step 1, i.e. they share their in-block offset."""
    ids = long_range_group_ids(partition).flatten()
    return ids[:, None] == ids[None, :]


def short_range_mask(partition: Partition) -> torch.Tensor:
    """``HpWp x HpWp`` boolean relation of the short-range step: ``mask[p, q]`` is True when ``p`` and ``q`` lie in
    the same block."""
    ids = short_range_group_ids(partition).flatten()
    return ids[:, None] == ids[None, :]


def long_range_order(partition: Partition) -> torch.Tensor:
    """A permutation of the padded positions that lists the long-range groups one after the other: under it
    :func:`long_range_mask` is block diagonal (``loc_h*loc_w`` blocks of ``glb_h*glb_w``)."""
    return member_positions(partition).flatten()


def short_range_order(partition: Partition) -> torch.Tensor:
    """A permutation of the padded positions that lists the blocks one after the other: under it
    :func:`short_range_mask` is block diagonal (``glb_h*glb_w`` blocks of ``loc_h*loc_w``)."""
    return member_positions(partition).t().flatten()


def group_long_range(x: torch.Tensor, p: Partition) -> torch.Tensor:
    """Padded ``n x c x Hp x Wp`` -> ``(n * loc_h * loc_w) x c x glb_h x glb_w``, one map per long-range group.

    One copy, into channels-last memory, so the 1x1 projections and the token view that follow are free.
    """
    n, c = x.shape[:2]
    # n x c x Hp x Wp -> n x c x glb_h x loc_h x glb_w x loc_w -> n x loc_h x loc_w x glb_h x glb_w x c
    x = x.reshape(n, c, p.glb_h, p.loc_h, p.glb_w, p.loc_w).permute(0, 3, 5, 2, 4, 1).contiguous()
    # -> (n*loc_h*loc_w) x glb_h x glb_w x c -> (n*loc_h*loc_w) x c x glb_h x glb_w (channels-last view)
    return x.view(n * p.loc_h * p.loc_w, p.glb_h, p.glb_w, c).permute(0, 3, 1, 2)


def long_to_short_range(x: torch.Tensor, p: Partition) -> torch.Tensor:
    """Long-range grouping -> ``(n * glb_h * glb_w) x c x loc_h x loc_w``, one map per block.

    Always one copy into channels-last memory: for some inputs ``reshape`` could return a strided view
    instead, which every 1x1 projection that follows would then copy again on its own.
    """
    c = x.shape[1]
    # (n*loc_h*loc_w) x c x glb_h x glb_w -> n x loc_h x loc_w x c x glb_h x glb_w
    #   -> n x glb_h x glb_w x loc_h x loc_w x c
    x = x.reshape(-1, p.loc_h, p.loc_w, c, p.glb_h, p.glb_w).permute(0, 4, 5, 1, 2, 3).contiguous()
    # -> (n*glb_h*glb_w) x loc_h x loc_w x c -> (n*glb_h*glb_w) x c x loc_h x loc_w (channels-last view)
    return x.view(-1, p.loc_h, p.loc_w, c).permute(0, 3, 1, 2)


def ungroup_short_range(x: torch.Tensor, p: Partition) -> torch.Tensor:
    """Short-range grouping -> the padded ``n x c x Hp x Wp`` map (contiguous), each pixel back in place."""
    c = x.shape[1]
    # (n*glb_h*glb_w) x c x loc_h x loc_w -> n x glb_h x glb_w x c x loc_h x loc_w
    #   -> n x c x glb_h x loc_h x glb_w x loc_w
    x = x.reshape(-1, p.glb_h, p.glb_w, c, p.loc_h, p.loc_w).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(-1, c, p.padded_h, p.padded_w)  # -> n x c x Hp x Wp


@dataclass
class ISAWeights:
    """Attention weights captured from one ISA forward pass.

    ``long_range``: ``n x (loc_h*loc_w) x G x G`` with ``G = glb_h*glb_w``, indexed [image, group, query
    member, key member]; ``short_range``: ``n x (glb_h*glb_w) x B x B`` with ``B = loc_h*loc_w``. Members are
    numbered as :func:`short_range_group_ids` / :func:`long_range_group_ids` number them.
    """

    partition: Partition
    long_range: torch.Tensor
    short_range: torch.Tensor


class ISAOutput(NamedTuple):
    """What the ``forward_with_attention`` of ISA returns."""

    context: torch.Tensor  # n x c x h x w, the ISA output (same shape as its input)
    attention: ISAWeights  # both stages' weights


def attention_matrices(attention: ISAWeights, image_index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The captured weights of both steps as ``HpWp x HpWp`` matrices over the padded map (row = query, column =
    key, row-major positions; zero outside the masks): ``(A_L, A_S)``. The composed two-hop map is
    ``A_S @ A_L``: ``composed[p, r] = sum_q A_S[p, q] A_L[q, r]``."""
    p = attention.partition
    positions = member_positions(p)  # offset x block
    pixels = p.padded_h * p.padded_w
    long_full = attention.long_range.new_zeros(pixels, pixels)
    short_full = attention.short_range.new_zeros(pixels, pixels)
    # long_range[image, offset, i, j]: block i reads block j within group `offset`
    long_full[positions[:, :, None], positions[:, None, :]] = attention.long_range[image_index]
    # short_range[image, block, i, j]: offset i reads offset j within block `block`
    by_block = positions.t()  # block x offset
    short_full[by_block[:, :, None], by_block[:, None, :]] = attention.short_range[image_index]
    return long_full, short_full


def _interlaced(x: torch.Tensor, down_factor: tuple[int, int],
                long_range: Callable[[torch.Tensor], torch.Tensor],
                short_range: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, Partition]:
    """Pad, regroup, ``long_range``, regroup, ``short_range``, ungroup and crop ``n x c x h x w``."""
    h, w = x.shape[2:]
    p = Partition(h, w, *down_factor)
    # Under torch.export (ONNX) the sizes are symbols: pad always, so that the graph is right for every size
    # (a zero pad is a copy); in eager mode skip the copy when nothing needs padding.
    needs_pad = p.padding != (0, 0, 0, 0) or torch.compiler.is_exporting()
    out = F.pad(x, p.padding) if needs_pad else x  # n x c x Hp x Wp
    # Rebinding ``out`` frees each map as soon as its regrouped copy exists: the peak holds one stage's tensors.
    out = long_range(group_long_range(out, p))  # (n*loc_h*loc_w) x c x glb_h x glb_w
    out = short_range(long_to_short_range(out, p))  # (n*glb_h*glb_w) x c x loc_h x loc_w
    context = ungroup_short_range(out, p)[:, :, p.pad_top:p.pad_top + h, p.pad_left:p.pad_left + w]
    return context, p


def flex_patterns(down_factor: tuple[int, int]) -> list[Pattern]:
    """ISA's two steps as flex patterns over the padded map: the same in-block offset (long range), then the
    same block (short range)."""
    return [SameOffset(*down_factor), SameCell(*down_factor)]


def interlaced_attention(x: torch.Tensor, global_relation: SelfAttentionBlock, local_relation: SelfAttentionBlock,
                         down_factor: tuple[int, int], kernel: Kernel = "matmul") -> torch.Tensor:
    """The ISA operation on ``n x c x h x w``: pad, long-range attention, short-range attention, un-permute,
    crop. Returns the context, the same shape as ``x``. ``kernel="flex"`` needs no regrouping: both steps are
    masks over the padded map (row-major tokens; :class:`ISAModule` takes other orders)."""
    if kernel == "flex":
        partition = Partition(*x.shape[2:], *down_factor)
        return flex_relations(x, [global_relation, local_relation], flex_patterns(down_factor), partition.padding,
                              cell=tuple(down_factor))
    context, _ = _interlaced(x, down_factor, lambda groups: global_relation(groups, kernel),
                             lambda blocks: local_relation(blocks, kernel))
    return context


def interlaced_attention_with_weights(x: torch.Tensor, global_relation: SelfAttentionBlock,
                                      local_relation: SelfAttentionBlock, down_factor: tuple[int, int]) -> ISAOutput:
    """:func:`interlaced_attention` with the explicit kernel, and the weights of both stages."""
    weights = []

    def keep_weights(relation: SelfAttentionBlock) -> Callable[[torch.Tensor], torch.Tensor]:
        def step(groups: torch.Tensor) -> torch.Tensor:
            out, stage_weights = relation.forward_with_attention(groups)
            weights.append(stage_weights)
            return out
        return step

    context, p = _interlaced(x, down_factor, keep_weights(global_relation), keep_weights(local_relation))
    n, groups_long, groups_short = x.shape[0], p.num_long_range_groups, p.num_short_range_groups
    return ISAOutput(context, ISAWeights(
        p, weights[0].reshape(n, groups_long, groups_short, groups_short),  # n x (loc_h*loc_w) x G x G
        weights[1].reshape(n, groups_short, groups_long, groups_long)))  # n x (glb_h*glb_w) x B x B


class ISAModule(PatternAttention):
    """The attention part of ISA alone (both relations with their projections), for measurement and for the
    pattern comparison of notebook 06: two hops, long range then short range, over the padded map."""

    def __init__(self, channels: int = 512, isa_channels: int = 256, down_factor: tuple[int, int] = (8, 8),
                 kernel: Kernel = "matmul"):
        super().__init__(kernel)
        self.down_factor = self.cell = tuple(down_factor)
        self.global_relation = SelfAttentionBlock(channels, isa_channels)
        self.local_relation = SelfAttentionBlock(channels, isa_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel == "flex":
            return self.flex_forward(x)
        return interlaced_attention(x, self.global_relation, self.local_relation, self.down_factor, self.kernel)

    def forward_with_attention(self, x: torch.Tensor) -> ISAOutput:
        return interlaced_attention_with_weights(x, self.global_relation, self.local_relation, self.down_factor)

    def relations(self) -> list[SelfAttentionBlock]:
        return [self.global_relation, self.local_relation]

    def partition(self, height: int, width: int) -> Partition:
        return Partition(height, width, *self.down_factor)

    def padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        return self.partition(height, width).padding

    def hops(self, height: int, width: int) -> list[torch.Tensor]:
        """Long range (same in-block offset) then short range (same block), over the padded map."""
        p = self.partition(height, width)
        return [long_range_mask(p), short_range_mask(p)]

    def flex_patterns(self) -> list[Pattern]:
        return flex_patterns(self.down_factor)

    def affinity_entries(self, height: int, width: int) -> int:
        return self.partition(height, width).affinity_entries()[1]
