"""Every efficient attention is exactly its pattern: its output equals dense attention with the pattern's mask
applied before the softmax, computed the slow way (full ``HW x HW`` logits, ``-inf`` outside the mask), on maps
the window / stride / down factor does not divide. Patterns are also checked by hand on tiny maps."""

from __future__ import annotations

import pytest
import torch

from isanet.data.sample_checkpoint import random_state_dict
from isanet.models.efficient.base import PatternAttention, compose, masked_dense
from isanet.models.efficient.registry import METHODS, build_attention
from isanet.models.efficient.window import WindowAttention

pytestmark = pytest.mark.usefixtures("one_thread")


def seeded(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and BN statistics, float64, eval mode."""
    module.load_state_dict(random_state_dict(module, seed))
    return module.double().eval()


@pytest.mark.parametrize("kernel", ["matmul", "sdpa"])
@pytest.mark.parametrize("layer", [1, 2])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("height", "width", "size"), [(7, 10, 4), (5, 9, 3), (8, 8, 4)])
def test_module_is_masked_dense_attention(method: str, layer: int, kernel: str, height: int, width: int,
                                          size: int) -> None:
    module = seeded(build_attention(method, 12, 6, kernel, size, layer))
    x = torch.randn(2, 12, height, width, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        out, expected = module(x), masked_dense(module, x)
    assert out.shape == x.shape
    assert expected.abs().max() > 0.1  # the comparison is not between two near-zero maps
    relative = (out - expected).norm() / expected.norm()
    assert relative <= 1e-5, f"{method} layer {layer} [{kernel}]: relative error {relative:.2e}"


@pytest.mark.parametrize("method", ["ccnet", "window", "strided"])
def test_pattern_matters(method: str) -> None:
    """Dense attention is not an accidental match: the sparse modules differ from it with the same weights."""
    module = seeded(build_attention(method, 12, 6, "matmul", 4))
    dense = seeded(build_attention("dense", 12, 6))
    dense.relation.load_state_dict(module.relations()[0].state_dict())
    x = torch.randn(1, 12, 7, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        assert (module(x) - dense(x)).abs().max() > 1e-3


def keys(module: PatternAttention, height: int, width: int, pixel: tuple[int, int]) -> set[tuple[int, int]]:
    row = module.reach(height, width)[pixel[0] * width + pixel[1]]
    return {(int(i) // width, int(i) % width) for i in row.nonzero().flatten()}


def test_criss_cross_pattern_by_hand() -> None:
    module = build_attention("ccnet", 4, 2)
    assert keys(module, 3, 4, (1, 2)) == {(1, 0), (1, 1), (1, 2), (1, 3), (0, 2), (2, 2)}
    assert module.reach(3, 4).sum(1).tolist() == [3 + 4 - 1] * 12
    assert module.affinity_entries(3, 4) == 12 * 7


def test_axial_hops_and_full_reach() -> None:
    module = build_attention("axial", 4, 2)
    row_hop, column_hop = module.hop_masks(3, 4)
    assert row_hop[5].nonzero().flatten().tolist() == [4, 5, 6, 7]  # pixel (1, 1): row 1
    assert column_hop[5].nonzero().flatten().tolist() == [1, 5, 9]  # pixel (1, 1): column 1
    assert module.reach(3, 4).all()
    assert module.affinity_entries(3, 4) == 12 * 4 + 12 * 3


def test_window_patterns_by_hand() -> None:
    plain, shifted = build_attention("window", 4, 2, size=2, layer=1), build_attention("window", 4, 2, size=2, layer=2)
    assert shifted.shift == 1
    assert keys(plain, 5, 5, (0, 0)) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert keys(plain, 5, 5, (4, 4)) == {(4, 4)}  # the border window of a map 2 does not divide
    assert keys(plain, 5, 5, (4, 1)) == {(4, 0), (4, 1)}
    assert keys(shifted, 5, 5, (0, 0)) == {(0, 0)}
    assert keys(shifted, 5, 5, (1, 2)) == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert build_attention("window", 4, 2, size=4).affinity_entries(8, 8) == 64 * 16 == \
        build_attention("window", 4, 2, size=4).reach(8, 8).sum()


def test_strided_pattern_by_hand() -> None:
    module = build_attention("strided", 4, 2, size=2)
    assert keys(module, 4, 4, (0, 0)) == {(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (2, 2)}
    # block rows 2-3, cols 0-1; lattice rows 1, 3 and cols 1, 3 (row 5 would be off the 5 x 4 map)
    assert keys(module, 5, 4, (3, 1)) == {(2, 0), (2, 1), (3, 0), (3, 1), (1, 1), (1, 3), (3, 3)}
    assert keys(module, 5, 4, (4, 0)) == {(4, 0), (4, 1), (0, 0), (0, 2), (2, 0), (2, 2), (4, 2)}
    # the query sits in its block and in its lattice: materialised twice, counted once
    assert module.affinity_entries(8, 8) == module.reach(8, 8).sum() + 64


def test_isa_pattern_is_two_hops_over_the_padded_map() -> None:
    module = build_attention("isa", 4, 2, size=4)
    long_hop, short_hop = module.hop_masks(7, 10)
    assert long_hop.shape == short_hop.shape == (8 * 12, 8 * 12)  # padded to whole 4 x 4 blocks
    assert long_hop.sum(1).tolist() == [2 * 3] * 96 and short_hop.sum(1).tolist() == [16] * 96
    assert not (long_hop & short_hop & ~torch.eye(96, dtype=torch.bool)).any()  # groups meet in one pixel
    assert module.reach(7, 10).all()  # every pixel reaches every other in one ISA module


def test_dense_pattern_and_compose() -> None:
    assert build_attention("dense", 4, 2).reach(3, 5).all()
    shift = torch.roll(torch.eye(4, dtype=torch.bool), 1, dims=1)  # i reads i + 1
    assert compose([shift, shift]).nonzero().tolist() == [[0, 2], [1, 3], [2, 0], [3, 1]]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        build_attention("linear")
    with pytest.raises(ValueError, match="layer 1 or 2"):
        build_attention("window", layer=3)
    with pytest.raises(ValueError, match="0 <= shift < window"):
        WindowAttention(4, 2, window=4, shift=4)
