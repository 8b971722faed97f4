"""Interlaced Sparse Self-Attention: dense attention factorised into a long-range and a short-range step.

*Interlaced Sparse Self-Attention for Semantic Segmentation*, Huang et al., arXiv:1907.12273 (OCNet, IJCV 2021),
https://arxiv.org/abs/1907.12273. Read this file first: it is the whole of ISA's geometry and forward pass, as
mmsegmentation 1.2.2's ``mmseg/models/decode_heads/isa_head.py`` (``ISAHead.forward``: pad, two
``view``/``permute`` regroupings, crop) and openseg.pytorch's ``isa_block.py`` compute it.

In the paper's notation the block size ``(P_h, P_w)`` is ``down_factor = (loc_h, loc_w)`` here, and the number
of blocks ``(Q_h, Q_w)`` is ``(glb_h, glb_w)``. For a feature map of ``h x w`` the map is padded to a multiple
of the factor (symmetrically, the extra row/column going to the bottom/right) and cut into ``glb_h x glb_w``
blocks of ``loc_h x loc_w`` pixels. Shapes write the map as given ``h x w`` and the padded map ``Hp x Wp``
(``Partition.padded_h x padded_w``); elsewhere in the kit ``H x W`` is the image.

1. Long range: the pixels with the same in-block offset form one group of ``glb_h * glb_w`` pixels spread
   over the whole map (one per block, stride ``loc``); dense attention runs inside each group.
2. Short range: the pixels of one block form one group of ``loc_h * loc_w`` neighbours; dense attention runs
   inside each block on the output of step 1.

Any pixel reaches any other in two hops (long range to the pixel with its own offset in the target's block,
then short range within that block), at an affinity cost of ``Hp Wp (glb_h*glb_w + loc_h*loc_w)`` entries
instead of ``(hw)²``.

**One definition of the groups**: :meth:`Partition.offset` and :meth:`Partition.block`. The group ids,
:func:`member_positions`, the masks (:mod:`isanet.analysis.isa_matrices`) and FlexAttention's predicates and
orders (:mod:`isanet.models.efficient.flex`) derive from them; tests hold the reshapes equal to them. A *step*
maps a batch of group maps to maps of that shape: ISA's are dense ``SelfAttentionBlock`` s (``attention.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from isanet.models.layers import grid

Step = Callable[[torch.Tensor], torch.Tensor]  # one attention step: ``B x C x gh x gw -> B x C x gh x gw``


@dataclass(frozen=True)
class Partition:
    """The geometry of ISA on an ``height x width`` map: block counts, the symmetric padding, and which groups
    each position belongs to."""

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
        """Block ``(row, col)`` of padded position ``(y, x)`` (ints or integer tensors): its short-range group."""
        return y // self.loc_h, x // self.loc_w

    def offset(self, y, x):
        """In-block offset ``(row, col)`` of padded position ``(y, x)``: its long-range group."""
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

    def groups_of(self, row: int, col: int) -> tuple[int, int]:
        """``(long-range group, short-range group)`` of the pixel at *unpadded* ``(row, col)``."""
        if not (0 <= row < self.height and 0 <= col < self.width):
            raise ValueError(f"pixel ({row}, {col}) is outside the {self.height}x{self.width} map")
        y, x = row + self.pad_top, col + self.pad_left
        return self.long_range_group(y, x), self.short_range_group(y, x)

    def affinity_entries(self) -> tuple[int, int]:
        """Number of affinity entries per image: ``(dense, isa)``. Dense counts the unpadded map."""
        pixels = self.padded_h * self.padded_w
        return (self.height * self.width) ** 2, pixels * (self.glb_h * self.glb_w + self.loc_h * self.loc_w)


def long_range_group_ids(partition: Partition) -> torch.Tensor:
    """``padded_h x padded_w`` map of each position's long-range group: its in-block offset, row-major."""
    return partition.long_range_group(*grid(partition.padded_h, partition.padded_w))


def short_range_group_ids(partition: Partition) -> torch.Tensor:
    """``padded_h x padded_w`` map of each position's short-range group: its block, row-major.

    This is also the position's index *inside* its long-range group, and vice versa.
    """
    return partition.short_range_group(*grid(partition.padded_h, partition.padded_w))


def member_positions(partition: Partition) -> torch.Tensor:
    """``(loc_h*loc_w) x (glb_h*glb_w)`` flat padded position (row-major over ``padded_h x padded_w``) of the
    member with in-block offset ``o`` in block ``b``: the index ISA's two regroupings are built on.

    Row ``o`` lists long-range group ``o`` in its member order; column ``b`` lists block ``b`` in its member
    order. Flattened row-major it is the long-range order of all positions, column-major the short-range order.
    """
    # Sort the positions by (long-range group, short-range group): each pair names exactly one position.
    key = long_range_group_ids(partition) * partition.num_short_range_groups + short_range_group_ids(partition)
    order = torch.argsort(key.flatten())  # HpWp positions, long-range group by long-range group
    return order.view(partition.num_long_range_groups, partition.num_short_range_groups)  # -> offset x block


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


def interlaced(x: torch.Tensor, down_factor: tuple[int, int], long_range: Step,
               short_range: Step) -> tuple[torch.Tensor, Partition]:
    """ISA's forward pass on ``n x c x h x w``: pad, regroup, ``long_range``, regroup, ``short_range``,
    ungroup, crop. Returns the context (the shape of ``x``) and the partition it used."""
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


def interlaced_with_weights(x: torch.Tensor, down_factor: tuple[int, int],
                            long_range: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                            short_range: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> ISAOutput:
    """:func:`interlaced` with steps that also return their ``B x L x L`` weights; both stages' weights kept."""
    weights = []

    def keeping(step: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> Step:
        def run(groups: torch.Tensor) -> torch.Tensor:
            out, stage_weights = step(groups)
            weights.append(stage_weights)
            return out
        return run

    context, p = interlaced(x, down_factor, keeping(long_range), keeping(short_range))
    n, groups_long, groups_short = x.shape[0], p.num_long_range_groups, p.num_short_range_groups
    return ISAOutput(context, ISAWeights(
        p, weights[0].reshape(n, groups_long, groups_short, groups_short),  # n x (loc_h*loc_w) x G x G
        weights[1].reshape(n, groups_short, groups_long, groups_long)))  # n x (glb_h*glb_w) x B x B
