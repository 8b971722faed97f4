"""Dense attention and ISA: the two kernels agree, the permutations are exact, the partitions cover the map,
and the degenerate down factors turn ISA into known dense attentions."""

from __future__ import annotations

from functools import cache

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from isanet.analysis.isa_matrices import pixel_groups
from isanet.data.sample_checkpoint import random_state_dict
from isanet.models.attention import SelfAttentionBlock
from isanet.models.efficient.isa_module import ISAModule, interlaced_attention
from isanet.models.heads import DenseHead
from isanet.models.isa import (
    Partition,
    group_long_range,
    long_range_group_ids,
    long_to_short_range,
    short_range_group_ids,
    ungroup_short_range,
)

FAST = settings(max_examples=25, deadline=None)
sizes = st.integers(1, 9)


pytestmark = pytest.mark.usefixtures("one_thread")


def seeded(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics and scales, so no projection is near the identity or near zero."""
    module.load_state_dict(random_state_dict(module, seed))
    return module.eval()


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@cache
def isa_module(down_factor: tuple[int, int]) -> ISAModule:
    """A small double-precision ISA module (shared weights across down factors: same seed)."""
    return seeded(ISAModule(8, 4, down_factor)).double()


def pointwise(block: SelfAttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """A relation over one-pixel groups: the single weight is 1, so only value and output projections act."""
    return block.output_project(block.value_project(x))


def along(block: SelfAttentionBlock, x: torch.Tensor, axis: str) -> torch.Tensor:
    """Dense attention of ``block`` inside each column (``axis="h"``) or each row (``axis="w"``) of ``x``."""
    n, c, h, w = x.shape
    if axis == "h":
        lines = x.permute(0, 3, 1, 2).reshape(n * w, c, h, 1)
        return block(lines).reshape(n, w, c, h).permute(0, 2, 3, 1)
    lines = x.permute(0, 2, 1, 3).reshape(n * h, c, 1, w)
    return block(lines).reshape(n, h, c, w).permute(0, 2, 1, 3)


# ------------------------------------------------------------------------------------------------ kernels

# The fused path differs by device (CPU: flash with value heads; CUDA: memory-efficient, one head).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("value_heads", [1, 2])
def test_self_attention_block_kernels_agree(device, value_heads):
    block = seeded(SelfAttentionBlock(16 * value_heads, 16)).to(device)
    x = torch.randn(2, 16 * value_heads, 9, 11, device=device)
    with torch.no_grad():
        assert rel_diff(block(x, "sdpa"), block(x, "matmul")) < 1e-5


def test_dense_head_kernels_agree_and_weights_are_a_softmax():
    head = seeded(DenseHead(in_channels=24, channels=16, isa_channels=8, num_classes=3))
    features = [None, None, None, torch.randn(1, 24, 7, 10)]
    with torch.no_grad():
        logits_matmul, weights = head.forward_with_attention(features)
        head.kernel = "sdpa"
        logits_sdpa = head(features)
    assert rel_diff(logits_sdpa, logits_matmul) < 1e-5
    assert weights.shape == (1, 70, 70)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 70))


@pytest.mark.parametrize("device", DEVICES)
def test_isa_kernels_agree_with_padding(device):
    module = seeded(ISAModule(16, 8, (3, 4))).to(device)
    x = torch.randn(2, 16, 7, 10, device=device)  # pads to 9 x 12
    with torch.no_grad():
        matmul = module(x)
        module.kernel = "sdpa"
        assert rel_diff(module(x), matmul) < 1e-5


def test_unknown_kernel_is_refused_with_the_choices():
    block = SelfAttentionBlock(8, 4).eval()
    with pytest.raises(ValueError, match="kernel must be one of \\('matmul', 'sdpa', 'flex'\\), got 'flash'"):
        block(torch.randn(1, 8, 3, 3), "flash")
    with pytest.raises(ValueError, match="kernel must be one of"):
        ISAModule(8, 4, kernel="flash")


# ---------------------------------------------------------------------------------- dense equivalences

@FAST
@given(h=sizes, w=sizes)
def test_down_factor_one_is_dense_global_then_pointwise_local(h, w):
    """(1, 1): one long-range group holding every pixel (dense attention with the global relation), then
    one-pixel blocks (the local relation reduces to its value and output projections)."""
    module = isa_module((1, 1))
    x = torch.randn(1, 8, h, w, dtype=torch.float64)
    with torch.no_grad():
        out, attention = module.forward_with_attention(x)
        dense, weights = module.global_relation.forward_with_attention(x)
        expected = pointwise(module.local_relation, dense)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(attention.long_range[:, 0], weights, rtol=1e-10, atol=1e-12)
    assert torch.equal(attention.short_range, torch.ones(1, h * w, 1, 1, dtype=torch.float64))


@FAST
@given(h=sizes, w=sizes)
def test_down_factor_of_the_map_size_is_pointwise_global_then_dense_local(h, w):
    """(h, w): one long-range group per pixel (the global relation is pointwise), one block = the whole map
    (dense attention with the local relation). No padding is involved."""
    module = isa_module((h, w))
    x = torch.randn(1, 8, h, w, dtype=torch.float64)
    with torch.no_grad():
        out, attention = module.forward_with_attention(x)
        dense, weights = module.local_relation.forward_with_attention(pointwise(module.global_relation, x))
    torch.testing.assert_close(out, dense, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(attention.short_range[:, 0], weights, rtol=1e-10, atol=1e-12)


@FAST
@given(h=sizes, w=sizes, extra_h=st.integers(0, 3), extra_w=st.integers(0, 3))
def test_one_padded_block_is_dense_attention_on_the_padded_map(h, w, extra_h, extra_w):
    """A down factor at least the map size: still one long-range group per pixel, and one block that is the
    zero-padded map. Padded positions are keys like any other; the result is that map's dense output, cropped."""
    module = isa_module((h + extra_h, w + extra_w))
    x = torch.randn(1, 8, h, w, dtype=torch.float64)
    p = Partition(h, w, h + extra_h, w + extra_w)
    with torch.no_grad():
        out = module(x)
        dense = module.local_relation(pointwise(module.global_relation, F.pad(x, p.padding)))
    expected = dense[:, :, p.pad_top:p.pad_top + h, p.pad_left:p.pad_left + w]
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


@FAST
@given(h=sizes, w=sizes)
def test_row_and_column_factors_make_axial_attention(h, w):
    """(1, w): long-range groups are the columns, blocks are the rows: ISA becomes axial attention,
    column attention with the global relation followed by row attention with the local one."""
    module = isa_module((1, w))
    x = torch.randn(2, 8, h, w, dtype=torch.float64)
    with torch.no_grad():
        expected = along(module.local_relation, along(module.global_relation, x, "h"), "w")
        torch.testing.assert_close(module(x), expected, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------ permutations, partitions

partitions = st.builds(Partition, height=st.integers(1, 12), width=st.integers(1, 12), loc_h=st.integers(1, 5),
                       loc_w=st.integers(1, 5))


@FAST
@given(p=partitions, n=st.integers(1, 2), c=st.integers(1, 3))
def test_permutations_round_trip_exactly_through_channels_last_groups(p, n, c):
    """Each grouping is one copy into channels-last memory, so the 1x1 projections on it copy nothing more."""
    x = torch.randn(n, c, p.padded_h, p.padded_w)
    by_group = group_long_range(x, p)
    by_block = long_to_short_range(by_group, p)
    for grouped in (by_group, by_block):
        assert grouped.permute(0, 2, 3, 1).is_contiguous()
    assert torch.equal(ungroup_short_range(by_block, p), x)


class Identity(torch.nn.Module):
    """A relation that attends nowhere: what comes in goes out."""

    def forward(self, x, kernel="matmul", step=None):
        return x


@FAST
@given(p=partitions)
def test_isa_with_identity_relations_is_the_identity(p):
    """Pad, permute, un-permute, crop: with relations that do nothing, ISA must give back its input."""
    x = torch.randn(1, 3, p.height, p.width)
    assert torch.equal(interlaced_attention(x, Identity(), Identity(), (p.loc_h, p.loc_w)), x)


@FAST
@given(p=partitions)
def test_partitions_cover_every_position_once_per_stage(p):
    long_ids, short_ids = long_range_group_ids(p).flatten(), short_range_group_ids(p).flatten()
    groups, members = p.num_long_range_groups, p.num_short_range_groups
    assert torch.equal(torch.bincount(long_ids, minlength=groups), torch.full((groups,), members))
    assert torch.equal(torch.bincount(short_ids, minlength=members), torch.full((members,), groups))
    # (long-range group, block) names each padded position exactly once: both stages are partitions
    assert torch.equal((long_ids * members + short_ids).sort().values, torch.arange(groups * members))


@FAST
@given(p=partitions)
def test_group_maps_describe_what_the_permutations_do(p):
    """The teaching maps agree with the tensors the attention runs on: member i of long-range group g is the
    position with long id g and short id i, and member j of block b the one with short id b and long id j."""
    index = torch.arange(p.padded_h * p.padded_w, dtype=torch.float64).view(1, 1, p.padded_h, p.padded_w)
    long_ids, short_ids = long_range_group_ids(p).flatten(), short_range_group_ids(p).flatten()
    by_group = group_long_range(index, p).reshape(p.num_long_range_groups, -1).long()
    by_block = long_to_short_range(group_long_range(index, p), p).reshape(p.num_short_range_groups, -1).long()
    assert torch.equal(long_ids[by_group], torch.arange(p.num_long_range_groups)[:, None].expand_as(by_group))
    assert torch.equal(short_ids[by_group], torch.arange(p.num_short_range_groups).expand_as(by_group))
    assert torch.equal(short_ids[by_block], torch.arange(p.num_short_range_groups)[:, None].expand_as(by_block))
    assert torch.equal(long_ids[by_block], torch.arange(p.num_long_range_groups).expand_as(by_block))


@FAST
@given(p=partitions, data=st.data())
def test_pixel_groups_hold_the_pixel_and_have_the_group_sizes(p, data):
    row, col = data.draw(st.integers(0, p.height - 1)), data.draw(st.integers(0, p.width - 1))
    long_group, short_group = pixel_groups(p, row, col)
    assert long_group.shape == (p.num_short_range_groups, 2)
    assert short_group.shape == (p.num_long_range_groups, 2)
    here = torch.tensor([row + p.pad_top, col + p.pad_left])
    assert (long_group == here).all(1).sum() == 1 and (short_group == here).all(1).sum() == 1


def test_sdpa_kernel_is_really_fused_and_never_stores_the_affinity():
    from isanet.analysis.memory import peak_memory

    block = SelfAttentionBlock(64, 32).eval()
    x = torch.randn(1, 64, 48, 48)
    affinity_bytes = (48 * 48) ** 2 * 4
    with torch.no_grad():
        explicit = peak_memory(lambda: block(x, "matmul"), "cpu")
        fused = peak_memory(lambda: block(x, "sdpa"), "cpu")
    assert explicit >= affinity_bytes > 4 * fused


def test_partition_block_and_offset_helpers_by_hand():
    """A 9x11 map with 4x4 blocks pads to 12x12 (3x3 blocks): top 1, bottom 2, left 0, right 1."""
    p = Partition(9, 11, 4, 4)
    assert (p.glb_h, p.glb_w, p.padding) == (3, 3, (0, 1, 1, 2))
    assert p.block(5, 9) == (1, 2) and p.offset(5, 9) == (1, 1) and p.block_origin(5, 9) == (4, 8)
    assert p.short_range_group(5, 9) == 1 * 3 + 2 and p.long_range_group(5, 9) == 1 * 4 + 1
    ids_long, ids_short = long_range_group_ids(p), short_range_group_ids(p)
    assert ids_long[5, 9] == 5 and ids_short[5, 9] == 5
    assert ids_long.unique().numel() == 16 and ids_short.unique().numel() == 9


def test_forward_with_attention_gives_the_forward_output_and_softmax_weights():
    module = isa_module((3, 4))
    x = torch.randn(2, 8, 7, 10, dtype=torch.float64)
    with torch.no_grad():
        out, attention = module.forward_with_attention(x)
        torch.testing.assert_close(out, module(x), rtol=1e-12, atol=1e-12)
    p = attention.partition
    assert attention.long_range.shape == (2, 12, 9, 9) and attention.short_range.shape == (2, 9, 12, 12)
    for weights in (attention.long_range, attention.short_range):
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1], dtype=torch.float64))
    assert (p.glb_h, p.glb_w, p.loc_h, p.loc_w) == (3, 3, 3, 4)
