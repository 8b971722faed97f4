"""ISA as matrices: the ``HpWp x HpWp`` relations of its two steps, the orders that make them block diagonal,
each pixel's groups, and captured weights laid out as the paper's ``A_L`` and ``A_S``.

*Interlaced Sparse Self-Attention for Semantic Segmentation*, Huang et al., arXiv:1907.12273,
https://arxiv.org/abs/1907.12273. The model never forms these matrices (:mod:`isanet.models.isa` regroups
instead); notebooks 01, 02 and 07 and the influence analysis do, to show what the regroupings compute. Every
matrix here is derived from :class:`~isanet.models.isa.Partition`'s group ids: :func:`long_range_mask` ``L`` and
:func:`short_range_mask` ``S`` are block diagonal under :func:`long_range_order` / :func:`short_range_order`,
every entry of ``S @ L`` is 1 (one path per pair), and :func:`attention_matrices` turns captured weights into
``A_L``, ``A_S`` with ``composed = A_S @ A_L``.
"""

from __future__ import annotations

import torch

from isanet.models.isa import (
    ISAWeights,
    Partition,
    long_range_group_ids,
    member_positions,
    short_range_group_ids,
)
from isanet.models.layers import same_group


def long_range_mask(partition: Partition) -> torch.Tensor:
    """``HpWp x HpWp`` boolean relation of the long-range step over the padded map (row-major positions):
    ``mask[q, r]`` is True when ``q`` attends to ``r`` in step 1, i.e. they share their in-block offset."""
    return same_group(long_range_group_ids(partition))


def short_range_mask(partition: Partition) -> torch.Tensor:
    """``HpWp x HpWp`` boolean relation of the short-range step: ``mask[p, q]`` is True when ``p`` and ``q`` lie in
    the same block."""
    return same_group(short_range_group_ids(partition))


def long_range_order(partition: Partition) -> torch.Tensor:
    """A permutation of the padded positions that lists the long-range groups one after the other: under it
    :func:`long_range_mask` is block diagonal (``loc_h*loc_w`` blocks of ``glb_h*glb_w``)."""
    return member_positions(partition).flatten()


def short_range_order(partition: Partition) -> torch.Tensor:
    """A permutation of the padded positions that lists the blocks one after the other: under it
    :func:`short_range_mask` is block diagonal (``glb_h*glb_w`` blocks of ``loc_h*loc_w``)."""
    return member_positions(partition).t().flatten()


def pixel_groups(partition: Partition, row: int, col: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ``(row, col)`` coordinates (``K x 2``) of the long-range and short-range group of the pixel at
    unpadded ``(row, col)``, each in the order the attention weights use."""
    long_group, block = partition.groups_of(row, col)
    positions = member_positions(partition)  # offset x block
    coords = []
    for flat in (positions[long_group], positions[:, block]):  # K member positions, in member order
        coords.append(torch.stack([flat // partition.padded_w, flat % partition.padded_w], dim=1))
    return coords[0], coords[1]


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
