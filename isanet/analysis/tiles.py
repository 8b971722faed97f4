"""The tiles a block-sparse kernel computes: FlexAttention's BlockMask grid for a pattern in a token order.

FlexAttention (:mod:`isanet.models.efficient.flex`) cuts the ``L x L`` scores into ``block_size``-token tiles and skips
the empty ones. :func:`tile_view` reads that grid back (full / partial / empty tiles) and sets it against the
fewest tiles *any* order could need, ``ceil(allowed pairs / block_size²)``: how much of what the pattern saves
the kernel really saves. In row-major order ISA's long-range groups (one pixel per block, spread over the
map) touch almost every tile; listed group by group (ISA's own permute) they fill whole tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from isanet.models.efficient.base import PatternAttention
from isanet.models.efficient.flex import DEFAULT_BLOCK_SIZE, Order, Pattern, block_mask, inverse_order, token_order
from isanet.models.layers import grid

EMPTY, PARTIAL, FULL = 0, 1, 2
#: Query rows of the pattern evaluated at a time when counting its allowed pairs (bounds the memory).
_COUNT_ROWS = 1024


@dataclass(frozen=True)
class TileView:
    """One pattern's tile grid in one order."""

    states: torch.Tensor  # Tq x Tk: EMPTY, PARTIAL or FULL, row = query tile, column = key tile
    perm: torch.Tensor  # L: the row-major pixel of each token (the order)
    allowed_pairs: int  # query-key pairs the pattern allows
    block_size: int
    order: Order

    @property
    def computed(self) -> int:
        """Tiles the kernel computes (full and partial)."""
        return int((self.states != EMPTY).sum())

    @property
    def total(self) -> int:
        return self.states.numel()

    @property
    def needed(self) -> int:
        """The fewest tiles any order could compute: the allowed pairs packed into whole tiles."""
        return math.ceil(self.allowed_pairs / self.block_size ** 2)

    @property
    def skipped_share(self) -> float:
        """Share of the tiles the kernel skips."""
        return 1 - self.computed / self.total

    def summary(self) -> str:
        return (f"{self.order:6s}: tiles computed / needed {self.computed} / {self.needed} of {self.total} "
                f"({self.skipped_share:.1%} skipped, {1 - self.needed / self.total:.1%} possible)")


def allowed_pairs(pattern: Pattern, height: int, width: int) -> int:
    """How many query-key pairs ``pattern`` allows on an ``height x width`` map (counted in slices of queries)."""
    rows, cols = (t.flatten() for t in grid(height, width))  # HW: row / column of each position
    count = 0
    for start in range(0, height * width, _COUNT_ROWS):
        query = slice(start, start + _COUNT_ROWS)
        count += int(pattern(rows[query, None], cols[query, None], rows[None, :], cols[None, :]).sum())
    return count


def tile_view(pattern: Pattern, height: int, width: int, order: Order = "row", cell: tuple[int, int] = (8, 8),
              block_size: int = DEFAULT_BLOCK_SIZE) -> TileView:
    """The tile grid FlexAttention computes ``pattern`` on, an ``height x width`` map listed in ``order``."""
    mask = block_mask(pattern, height, width, order, tuple(cell), block_size, "cpu")
    tiles = -(-height * width // block_size)
    states = torch.full((tiles, tiles + 1), EMPTY, dtype=torch.int8)  # one spare column for unused index slots
    for counts, indices, state in ((mask.kv_num_blocks, mask.kv_indices, PARTIAL),
                                   (mask.full_kv_num_blocks, mask.full_kv_indices, FULL)):
        if counts is None:
            continue
        counts, indices = counts[0, 0, :tiles], indices[0, 0, :tiles]  # Tq and Tq x Tk' (the first batch, head)
        used = torch.arange(indices.shape[1])[None, :] < counts[:, None]  # Tq x Tk': slots that name a tile
        columns = torch.where(used, indices.long(), tiles)  # unused slots point at the spare column
        states.scatter_(1, columns, torch.where(used, state, EMPTY).to(torch.int8))
    return TileView(states[:, :tiles], token_order(order, height, width, cell), allowed_pairs(pattern, height, width),
                    block_size, order)


def module_tiles(module: nn.Module, height: int, width: int) -> tuple[int, int, int]:
    """``(computed, needed, total)`` tiles of the attention inside ``module`` on an ``height x width`` map with
    its own flex options, summed over its hops (over the padded map where it pads)."""
    attention = next(m for m in module.modules() if isinstance(m, PatternAttention))
    left, right, top, bottom = attention.padding(height, width)
    options = attention.flex
    views = [tile_view(pattern, top + height + bottom, left + width + right, options.order,
                       options.cell or attention.cell, options.block_size) for pattern in attention.flex_patterns()]
    return (sum(view.computed for view in views), sum(view.needed for view in views),
            sum(view.total for view in views))


def pixel_tiles(view: TileView, pixel: int) -> torch.Tensor:
    """For the query at row-major ``pixel``: per key pixel (row-major), whether the kernel computes its score
    (its key tile is not empty in the query's tile row)."""
    tiles_of = inverse_order(view.perm) // view.block_size  # L: the tile of each row-major pixel
    return view.states[tiles_of[pixel]][tiles_of] != EMPTY
