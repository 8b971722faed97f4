"""The matrix-view pictures and the shape walk of notebook 01 show what the model code does."""

from __future__ import annotations

import pytest
import torch

from isanet.analysis.isa_matrices import long_range_mask, short_range_mask
from isanet.models.efficient.isa_module import interlaced_attention
from isanet.models.isa import Partition
from isanet.notebook.partition_plots import (
    isa_shape_steps,
    plot_regrouping,
    plot_relation_masks,
    plot_two_hop_product,
    regrouped_indices,
    two_hop_path,
)

pytestmark = pytest.mark.usefixtures("one_thread")
PARTITIONS = [Partition(6, 6, 3, 3), Partition(5, 7, 2, 3), Partition(4, 4, 4, 4)]


class Recorder(torch.nn.Module):
    """A relation that lets its input through and records the shape it was given."""

    def __init__(self, shapes: list):
        super().__init__()
        self.shapes = shapes

    def forward(self, x, kernel="matmul", step=None):
        self.shapes.append(tuple(x.shape))
        return x


@pytest.mark.parametrize("p", PARTITIONS + [Partition(13, 18, 4, 4)])
def test_shape_steps_are_the_shapes_the_relations_receive(p):
    shapes: list = []
    out = interlaced_attention(torch.randn(2, 3, p.height, p.width), Recorder(shapes), Recorder(shapes),
                               (p.loc_h, p.loc_w))
    steps = dict(isa_shape_steps(p, batch=2, channels=3))
    assert [steps["attend in each group"], steps["attend in each block"]] == shapes
    assert steps["input"] == steps["crop"] == tuple(out.shape)
    assert steps["pad"] == steps["ungroup"] == (2, 3, p.padded_h, p.padded_w)


@pytest.mark.parametrize("p", PARTITIONS)
def test_via_is_the_one_position_the_mask_product_goes_through(p):
    short, long = short_range_mask(p), long_range_mask(p)
    for source in [(r, c) for r in range(p.height) for c in range(p.width)][::3]:
        for target in [(0, 0), (p.height - 1, p.width - 1), (p.height // 2, 0)]:
            (sy, sx), (vy, vx), (ty, tx) = two_hop_path(p, source, target)
            through = (short[ty * p.padded_w + tx] & long[:, sy * p.padded_w + sx]).nonzero().flatten().tolist()
            assert through == [vy * p.padded_w + vx]


@pytest.mark.parametrize("p", PARTITIONS)
def test_pictures_draw_the_masks_block_diagonal_and_a_product_of_ones(p):
    pixels = p.padded_h * p.padded_w
    masks = [ax.images[0].get_array() for ax in plot_relation_masks(p).axes]
    assert torch.equal(torch.as_tensor(masks[0]), long_range_mask(p))
    assert torch.equal(torch.as_tensor(masks[1]), short_range_mask(p))
    assert torch.equal(torch.as_tensor(masks[3]), torch.block_diag(
        *[torch.ones(p.num_long_range_groups, p.num_long_range_groups, dtype=torch.bool)] * p.num_short_range_groups))
    product = plot_two_hop_product(p)
    assert product.axes[2].images[0].get_array().tolist() == [[1] * pixels] * pixels
    assert product.axes[2].get_title().endswith("1 to 1 paths per pair")


@pytest.mark.parametrize("p", PARTITIONS)
def test_regrouped_indices_put_each_position_in_its_group_and_block(p):
    padded, by_group, by_block = regrouped_indices(p)
    long_ids, short_ids = long_range_mask(p), short_range_mask(p)
    for panels, mask in ((by_group, long_ids), (by_block, short_ids)):
        assert sorted(panels.flatten().tolist()) == list(range(p.padded_h * p.padded_w))  # a permutation
        for members in panels.flatten(1):  # one panel: exactly one group of the mask
            assert torch.equal(mask[members[0]].nonzero().flatten(), members.sort().values)
    if p.loc_h == p.loc_w:  # the long-range regrouping is pixel_unshuffle
        unshuffled = torch.nn.functional.pixel_unshuffle(padded.view(1, 1, *padded.shape).float(), p.loc_h)[0]
        assert torch.equal(unshuffled.long(), by_group)
    figure = plot_regrouping(p)
    assert len(figure.axes) == 1 + p.num_long_range_groups + p.num_short_range_groups
