"""The matrix view of ISA: the ``HW x HW`` relations of its two steps, their block-diagonal orders, and the
captured weights as full matrices. Every expectation comes from running the real regrouping code
(``interlaced_attention`` / ``group_long_range``) or the probe's per-pixel maps, not from the masks' own rule."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from isanet.analysis.isa_matrices import (
    attention_matrices,
    long_range_mask,
    long_range_order,
    short_range_mask,
    short_range_order,
)
from isanet.analysis.probe import composed_map, long_range_map, short_range_map
from isanet.data.sample_checkpoint import random_state_dict
from isanet.models.efficient.isa_module import ISAModule, interlaced_attention
from isanet.models.isa import Partition, group_long_range, member_positions

FAST = settings(max_examples=25, deadline=None)
partitions = st.builds(Partition, height=st.integers(1, 10), width=st.integers(1, 10), loc_h=st.integers(1, 4),
                       loc_w=st.integers(1, 4))

pytestmark = pytest.mark.usefixtures("one_thread")


class GroupSum(torch.nn.Module):
    """A relation where every member reads the plain sum of its group: weight 1 on each member."""

    def forward(self, x, kernel="matmul", step=None):
        return x.sum((2, 3), keepdim=True).expand_as(x)


class Identity(torch.nn.Module):
    def forward(self, x, kernel="matmul", step=None):
        return x


def reach(p: Partition, long_step: torch.nn.Module, short_step: torch.nn.Module) -> torch.Tensor:
    """``hw x hw`` (real pixels, row-major): entry [p, r] = how much of a one-hot at ``r`` arrives at ``p``
    through the real ISA code (channel ``r`` carries the one-hot of pixel ``r``)."""
    pixels = p.height * p.width
    one_hots = torch.eye(pixels, dtype=torch.float64).view(1, pixels, p.height, p.width)
    out = interlaced_attention(one_hots, long_step, short_step, (p.loc_h, p.loc_w))  # 1 x hw x h x w
    return out[0].reshape(pixels, pixels).t()  # [source channel, target] -> [target, source]


def real_pixels(p: Partition) -> torch.Tensor:
    """Flat padded positions of the unpadded pixels, row-major."""
    rows = torch.arange(p.height) + p.pad_top
    cols = torch.arange(p.width) + p.pad_left
    return (rows[:, None] * p.padded_w + cols[None, :]).flatten()


@FAST
@given(p=partitions)
def test_member_positions_are_the_long_range_grouping_the_attention_runs_on(p):
    index = torch.arange(p.padded_h * p.padded_w, dtype=torch.float64).view(1, 1, p.padded_h, p.padded_w)
    by_group = group_long_range(index, p).reshape(p.num_long_range_groups, p.num_short_range_groups)
    assert torch.equal(member_positions(p), by_group.long())


@FAST
@given(p=partitions)
def test_masks_are_what_each_step_of_the_real_code_connects(p):
    real = real_pixels(p)
    long_reach = reach(p, GroupSum(), Identity())
    short_reach = reach(p, Identity(), GroupSum())
    assert torch.equal(long_range_mask(p)[real][:, real], long_reach == 1)
    assert torch.equal(short_range_mask(p)[real][:, real], short_reach == 1)
    assert set(long_reach.unique().tolist()) <= {0.0, 1.0} and set(short_reach.unique().tolist()) <= {0.0, 1.0}


@FAST
@given(p=partitions)
def test_two_steps_connect_every_pair_by_exactly_one_path(p):
    """The product of the two sparse relations has no zero: each (target, source) pair is joined by exactly
    one intermediate position, in the real code as in the mask product (over the padded map too)."""
    paths = reach(p, GroupSum(), GroupSum())
    assert torch.equal(paths, torch.ones_like(paths))
    product = short_range_mask(p).long() @ long_range_mask(p).long()
    assert torch.equal(product, torch.ones_like(product))


def test_masks_by_hand_on_a_2x2_map_with_1x2_blocks():
    """Positions 0 1 / 2 3; blocks {0,1} and {2,3}; long-range groups (same column) {0,2} and {1,3}."""
    p = Partition(2, 2, 1, 2)
    assert long_range_mask(p).long().tolist() == [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]]
    assert short_range_mask(p).long().tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    assert long_range_order(p).tolist() == [0, 2, 1, 3]
    assert short_range_order(p).tolist() == [0, 1, 2, 3]


@FAST
@given(p=partitions)
def test_orders_make_the_masks_block_diagonal(p):
    for mask, order, blocks, size in (
            (long_range_mask(p), long_range_order(p), p.num_long_range_groups, p.num_short_range_groups),
            (short_range_mask(p), short_range_order(p), p.num_short_range_groups, p.num_long_range_groups)):
        assert sorted(order.tolist()) == list(range(p.padded_h * p.padded_w))
        expected = torch.block_diag(*[torch.ones(size, size, dtype=torch.bool)] * blocks)
        assert torch.equal(mask[order][:, order], expected)


@pytest.mark.parametrize("size, down_factor", [((6, 6), (3, 3)), ((5, 7), (2, 3))])
def test_attention_matrices_agree_with_the_probe_maps_of_every_pixel(size, down_factor):
    module = ISAModule(8, 4, down_factor).double()
    module.load_state_dict(random_state_dict(module, 0))
    x = torch.randn(1, 8, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    attention = module.eval().forward_with_attention(x).attention
    p = attention.partition
    long_full, short_full = attention_matrices(attention)
    composed = short_full @ long_full
    assert long_full.shape == short_full.shape == (p.padded_h * p.padded_w,) * 2
    torch.testing.assert_close(long_full.sum(1), torch.ones(p.padded_h * p.padded_w, dtype=torch.float64))
    assert torch.all(long_full[~long_range_mask(p)] == 0) and torch.all(short_full[~short_range_mask(p)] == 0)
    assert torch.all(composed > 0)
    for row in range(p.height):
        for col in range(p.width):
            position = (row + p.pad_top) * p.padded_w + col + p.pad_left
            for full, probe_map in ((long_full, long_range_map), (short_full, short_range_map),
                                    (composed, composed_map)):
                torch.testing.assert_close(full[position], probe_map(attention, row, col).flatten())
