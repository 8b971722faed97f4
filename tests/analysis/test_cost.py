"""The closed-form attention FLOPs equal what ``FlopCounterMode`` counts on the real modules, digit for digit,
and the break-even side is where the counted costs cross."""

from __future__ import annotations

import pytest
import torch

from isanet.analysis.attention_bench import attention_module
from isanet.analysis.cost import attention_cost, break_even_estimate, break_even_side, pattern_cost
from isanet.analysis.measure import count_module_flops
from isanet.models.efficient.registry import METHODS

pytestmark = pytest.mark.usefixtures("one_thread")


def counted(method: str, size: tuple[int, int], channels: int, isa_channels: int,
            down_factor: tuple[int, int]) -> int:
    module = attention_module(method, "matmul", channels, isa_channels, down_factor)
    return count_module_flops(module, torch.empty(1, channels, *size, device="meta"))


@pytest.mark.parametrize("method", ["dense", "isa"])
@pytest.mark.parametrize("size, channels, isa_channels, down_factor", [
    ((16, 16), 32, 16, (8, 8)), ((13, 18), 24, 8, (4, 4)), ((7, 5), 16, 16, (3, 2)), ((128, 128), 512, 256, (8, 8))])
def test_formula_equals_the_counted_flops(method, size, channels, isa_channels, down_factor):
    cost = attention_cost(method, *size, channels, isa_channels, down_factor)
    assert cost.total == counted(method, size, channels, isa_channels, down_factor)
    assert cost.projections > 0 and cost.affinity > 0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("size, square", [((13, 18), 4), ((16, 16), 8)])
def test_pattern_cost_equals_the_counted_flops_of_every_method(method, size, square):
    cost = pattern_cost(attention_module(method, "matmul", 24, 8, (square, square)), *size, 24, 8)
    assert cost.total == counted(method, size, 24, 8, (square, square))
    if method in ("dense", "isa"):
        assert cost == attention_cost(method, *size, 24, 8, (square, square))


def test_paper_setting_numbers_by_hand():
    """128x128, C=512, d=256, 8x8 blocks: dense pays 16384^2 pairs, ISA 16384 * (256 + 64), both 2*(256+512)."""
    dense, isa = attention_cost("dense", 128, 128), attention_cost("isa", 128, 128)
    assert dense.affinity == 16384 ** 2 * 1536 and isa.affinity == 16384 * 320 * 1536
    assert isa.projections == 2 * dense.projections == 2 * 16384 * 2 * (2 * (512 * 256 + 256 ** 2) + 2 * 512 ** 2)


@pytest.mark.parametrize("channels, isa_channels", [(32, 16), (256, 128)])
def test_break_even_side_is_where_the_counted_costs_cross(channels, isa_channels):
    side = break_even_side(channels, isa_channels, max_side=96)
    for n in (side - 1, side):
        dense, isa = (counted(method, (n, n), channels, isa_channels, (8, 8)) for method in ("dense", "isa"))
        assert (isa < dense) == (n == side), (n, dense, isa)
    # Without padding (sides the factor divides) the costs cross at the estimate; padding can only delay it.
    estimate = break_even_estimate(channels, isa_channels)
    below, above = 8 * int(estimate // 8), 8 * int(estimate // 8 + 1)
    assert estimate <= side
    for n, cheaper in ((below, False), (above, True)):
        dense, isa = (counted(method, (n, n), channels, isa_channels, (8, 8)) for method in ("dense", "isa"))
        assert (isa < dense) == cheaper, (n, dense, isa)


def test_unknown_method_and_too_small_a_range_are_refused():
    with pytest.raises(ValueError, match="method must be 'dense' or 'isa', got 'sparse'"):
        attention_cost("sparse", 8, 8)
    with pytest.raises(ValueError, match="raise max_side"):
        break_even_side(max_side=16)
