"""Reach of stacked attention layers: which pixels a query has read from after one, two, ... layers of each
method of :mod:`isanet.models.efficient.registry`, and how much of the map that is.

Layer ``l`` of a method has a reach mask ``P_l`` (its :meth:`~isanet.models.efficient.base.PatternAttention.reach`,
all of its hops). Information from pixel ``j`` reaches pixel ``i`` after ``L`` layers when there is a chain
``j -> m_1 -> ... -> i`` with each step allowed by its layer: the boolean product ``P_L ... P_2 P_1``. Only
patterns are involved (no weights), so this is exact, and cheap for maps of a few hundred pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from isanet.models.efficient.base import PatternAttention, compose
from isanet.models.efficient.registry import METHODS, build_attention


def layer_modules(method: str, size: int = 8, layers: int = 2) -> list[PatternAttention]:
    """The first ``layers`` layers of ``method`` (tiny projections: only their geometry is used). Windows
    alternate plain and shifted grids, as Swin does; every other method repeats its layer."""
    return [build_attention(method, 2, 1, size=size, layer=1 + index % 2) for index in range(layers)]


def reach(method: str, height: int, width: int, size: int = 8, layers: int = 2) -> torch.Tensor:
    """``HW x HW``: which pixels (columns) each pixel (row) has read from after ``layers`` layers."""
    return compose([module.reach(height, width) for module in layer_modules(method, size, layers)])


def reached_map(method: str, height: int, width: int, pixel: tuple[int, int], size: int = 8,
                layers: int = 2) -> torch.Tensor:
    """``height x width`` boolean map of the pixels ``pixel`` has read from after ``layers`` layers."""
    row, col = pixel
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"pixel {pixel} is outside the {height}x{width} map")
    return reach(method, height, width, size, layers)[row * width + col].reshape(height, width)  # HW -> H x W


@dataclass
class ReachRow:
    """One method on one map: attention hops per layer, reach after one and two layers (the fraction of the
    map a pixel has read from, averaged over pixels, and for the worst-placed pixel), and the affinity
    entries one layer computes per image (padded or masked entries included)."""

    method: str
    hops_per_layer: int
    reach_1: float
    reach_1_min: float
    reach_2: float
    reach_2_min: float
    affinity_entries: int
    dense_entries: int

    @property
    def affinity_vs_dense(self) -> float:
        return self.affinity_entries / self.dense_entries


def reach_table(height: int, width: int, size: int = 8,
                methods: tuple[str, ...] = tuple(METHODS)) -> list[ReachRow]:
    """A :class:`ReachRow` per method on an ``height x width`` map (window side / stride / ISA down factor
    ``size``)."""
    rows = []
    for method in methods:
        first, second = layer_modules(method, size, 2)
        one = first.reach(height, width)
        two = compose([one, second.reach(height, width)])
        pixels = height * width
        fractions = [pattern.sum(1).double() / pixels for pattern in (one, two)]
        rows.append(ReachRow(method, len(first.hop_masks(height, width)), fractions[0].mean().item(),
                             fractions[0].min().item(), fractions[1].mean().item(), fractions[1].min().item(),
                             first.affinity_entries(height, width), pixels ** 2))
    return rows
