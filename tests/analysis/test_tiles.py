"""The tile view: FlexAttention's BlockMask grid read back, checked against tiles counted by hand from the
dense mask in the same order, and ISA's long range skipping every tile it can only in its own order."""

from __future__ import annotations

import pytest
import torch

from isanet.analysis.tiles import EMPTY, FULL, PARTIAL, module_tiles, pixel_tiles, tile_view
from isanet.models.efficient.base import configure_flex
from isanet.models.efficient.flex import ORDERS, FlexOptions, SameCell, SameOffset, Union
from isanet.models.efficient.registry import build_attention


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("pattern", [SameOffset(3, 3), SameCell(3, 3), Union((SameCell(3, 3), SameOffset(3, 3)))])
def test_tiles_match_the_dense_mask(pattern, order: str) -> None:
    view = tile_view(pattern, 7, 10, order, (3, 3), block_size=16)
    dense = pattern.dense(7, 10)[view.perm][:, view.perm]  # 70 x 70 in token order
    padded = torch.zeros(80, 80, dtype=torch.bool)
    padded[:70, :70] = dense
    ones = padded.reshape(5, 16, 5, 16).sum((1, 3))  # allowed pairs per tile
    real = torch.ones(80, 80, dtype=torch.bool)
    real[70:, :] = real[:, 70:] = False
    capacity = real.reshape(5, 16, 5, 16).sum((1, 3))  # real pairs per tile (the last ones are cut)
    expected = torch.where(ones == 0, EMPTY, torch.where(ones == capacity, FULL, PARTIAL)).to(torch.int8)
    computed = view.states != EMPTY
    assert torch.equal(computed, ones > 0)
    assert view.allowed_pairs == int(dense.sum())
    assert view.needed <= view.computed <= view.total == 25
    # FlexAttention may keep a cut full tile as partial: full here is full there or partial
    assert torch.all((view.states == FULL) <= (expected == FULL))


def test_isa_long_range_needs_its_own_order() -> None:
    rows = {order: tile_view(SameOffset(4, 4), 16, 16, order, (4, 4), block_size=16) for order in ORDERS}
    assert rows["group"].computed == rows["group"].needed == 16  # 16 groups of 16 tokens: one tile each
    assert rows["row"].computed == 64  # a tile is one map row; it reads the 4 rows of its offset: 4 tiles each
    assert "skipped" in rows["row"].summary()


def test_module_tiles_and_pixel_tiles() -> None:
    module = configure_flex(build_attention("isa", 4, 2, "flex", 4), FlexOptions("group", block_size=16))
    computed, needed, total = module_tiles(module, 16, 16)  # long range 16 tiles, short range in group order more
    assert total == 2 * 256 and needed == 2 * 16 and computed > needed
    view = tile_view(SameOffset(4, 4), 16, 16, "group", (4, 4), 16)
    reads = pixel_tiles(view, 0)
    assert reads.sum() == 16 and bool(SameOffset(4, 4).dense(16, 16)[0][reads].all())


def test_bench_gives_a_flex_row_per_order() -> None:
    from isanet.analysis.attention_bench import bench_attention, format_rows
    from isanet.models.efficient import flex

    with flex.compiled(False):
        rows = bench_attention([(8, 8)], channels=8, isa_channels=4, down_factor=(4, 4), kernels=["flex"],
                               methods=["isa"], orders=["row", "group"], repeats=1, warmup=0)
    assert [(row.method, row.kernel, row.status, row.extra["order"]) for row in rows] == [
        ("isa", "flex", "ok", "row"), ("isa", "flex", "ok", "group")]
    assert all(row.extra["computed_with"] == "flex" and row.time_ms > 0 for row in rows)
    # 64 tokens, one 128-token tile per hop: nothing to skip in either order
    assert [row.extra["skipped_tiles"] for row in rows] == [0.0, 0.0]
    assert "flex:group" in format_rows(rows)
