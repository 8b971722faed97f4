"""kernel="flex": every method's flex form equals its masked-dense form (eager, fp32 and fp64, on maps neither
the cells nor the tiles divide, in every token order); the patterns are the hop masks; the orders are
permutations with their inverse; training on a CPU falls back with one warning. One compiled test."""

from __future__ import annotations

import warnings

import pytest
import torch
from test_efficient_attention import masked_dense, seeded

from isanet.models.config import ISANetConfig
from isanet.models.efficient import flex
from isanet.models.efficient.base import configure_flex
from isanet.models.efficient.flex import ORDERS, FlexOptions, inverse_order, token_order
from isanet.models.efficient.registry import METHODS, build_attention
from isanet.models.segmentor import ISANet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def eager():
    with flex.compiled(False):
        yield


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("layer", [1, 2])
@pytest.mark.parametrize("method", METHODS)
def test_flex_is_masked_dense(method: str, layer: int, order: str, dtype: torch.dtype, tolerance: float) -> None:
    module = seeded(build_attention(method, 12, 6, "flex", 3, layer)).to(dtype)
    configure_flex(module, FlexOptions(order, block_size=16))  # 7 x 10 = 70 tokens: 5 tiles, the last partial
    x = torch.randn(2, 12, 7, 10, generator=torch.Generator().manual_seed(1), dtype=dtype)
    with torch.no_grad():
        out, expected = module(x), masked_dense(module, x)
    assert module.computed_with == "flex"
    assert expected.abs().max() > 0.1
    relative = (out - expected).norm() / expected.norm()
    assert relative <= tolerance, f"{method} layer {layer} [{order}, {dtype}]: relative error {relative:.2e}"


@pytest.mark.parametrize("method", METHODS)
def test_flex_patterns_are_the_hops(method: str) -> None:
    """The mask_mods and the hop masks are one pattern (ISA's over its padded 9 x 12 map)."""
    module = build_attention(method, 4, 2, "flex", 3, layer=2)
    left, right, top, bottom = module.padding(7, 10)
    height, width = 7 + top + bottom, 10 + left + right
    for pattern, hop in zip(module.flex_patterns(), module.hop_masks(7, 10), strict=True):
        assert torch.equal(pattern.dense(height, width), hop)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("height", "width"), [(7, 10), (8, 8), (1, 5)])
def test_orders_are_permutations_with_inverse(order: str, height: int, width: int) -> None:
    perm = token_order(order, height, width, (3, 4))
    assert sorted(perm.tolist()) == list(range(height * width))
    inverse = inverse_order(perm)
    assert torch.equal(perm[inverse], torch.arange(height * width))
    assert torch.equal(inverse[perm], torch.arange(height * width))


def test_orders_by_hand() -> None:
    # 4 x 4 map, 2 x 2 cells: group = offset (0,0) of every block first, block = the top-left block first
    assert token_order("group", 4, 4, (2, 2))[:4].tolist() == [0, 2, 8, 10]
    assert token_order("block", 4, 4, (2, 2))[:4].tolist() == [0, 1, 4, 5]
    assert token_order("morton", 4, 4)[:8].tolist() == [0, 1, 4, 5, 2, 3, 6, 7]
    assert token_order("row", 2, 3).tolist() == [0, 1, 2, 3, 4, 5]


def test_isa_group_order_is_isas_own_permute() -> None:
    from isanet.analysis.isa_matrices import long_range_order, short_range_order
    from isanet.models.isa import Partition

    partition = Partition(16, 24, 4, 8)
    assert torch.equal(token_order("group", 16, 24, (4, 8)), long_range_order(partition))
    assert torch.equal(token_order("block", 16, 24, (4, 8)), short_range_order(partition))


def test_bad_order_and_kernel_named() -> None:
    with pytest.raises(ValueError, match="order must be one of"):
        FlexOptions("spiral")
    with pytest.raises(ValueError, match="kernel must be one of .*'flex'"):
        ISANetConfig.tiny(kernel="flash")


def test_model_with_flex_kernel_matches_matmul() -> None:
    """ISANetConfig(kernel="flex") for the ISA and dense heads gives the matmul model's logits."""
    for head in ("isa", "dense"):
        reference = ISANet(ISANetConfig.tiny(head=head, down_factor=(3, 3))).eval()
        model = ISANet(ISANetConfig.tiny(head=head, down_factor=(3, 3), kernel="flex")).eval()
        model.load_state_dict(reference.state_dict())
        x = torch.randn(1, 3, 61, 75, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            expected = reference(x)
            assert (model(x) - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_training_on_cpu_falls_back_once() -> None:
    module = seeded(build_attention("strided", 12, 6, "flex", 3)).train()
    x = torch.randn(1, 12, 7, 10, dtype=torch.float64, requires_grad=True)
    flex._warn_fallback.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module(x).sum().backward()
        module(x).sum().backward()
    messages = [str(w.message) for w in caught if "kernel='flex'" in str(w.message)]
    assert len(messages) == 1 and "explicit kernel" in messages[0]
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.allclose(module.eval()(x), masked_dense(module, x), atol=1e-10)


def test_compiled_flex_matches_masked_dense() -> None:
    """The one compiled test: ISA's long range in its own order through the fused CPU kernel."""
    module = seeded(build_attention("isa", 16, 16, "flex", 4)).float()
    configure_flex(module, FlexOptions("group", block_size=32))
    x = torch.randn(1, 16, 14, 15, generator=torch.Generator().manual_seed(4))
    with flex.compiled(True), torch.no_grad():
        out, expected = module(x), masked_dense(module, x)
    assert (out - expected).norm() / expected.norm() <= 1e-5


class ShortOfSharedMemory:
    """A compiled kernel stand-in that fails like Triton on a GPU for every tile setting but ``fits``, and
    otherwise answers with eager flex: the ladder's choices and its results, without a GPU."""

    def __init__(self, fits: dict | None, error: str = "out of resource: triton_tem_fused_flex_attention_0") -> None:
        self.fits, self.error, self.asked = fits, error, []

    def __call__(self, *tensors: torch.Tensor, kernel_options: dict | None = None, **kwargs) -> torch.Tensor:
        self.asked.append(kernel_options)
        if kernel_options != self.fits:
            raise RuntimeError(f"No valid triton configs. OutOfMemoryError: {self.error} Required: 234112")
        return flex.flex_attention(*tensors, **kwargs)


@pytest.fixture
def no_tiles_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flex, "_TILES_THAT_FIT", {})


@pytest.mark.usefixtures("no_tiles_remembered")
@pytest.mark.parametrize("fits", [None, *flex.SMALLER_TILES])
def test_tile_ladder_takes_the_first_setting_that_fits_and_remembers_it(fits: dict | None) -> None:
    q, k, v = (torch.randn(1, 1, 12, channels, dtype=torch.float64) for channels in (4, 4, 6))
    kernel = ShortOfSharedMemory(fits)
    settings = [None, *flex.SMALLER_TILES]
    torch.testing.assert_close(flex._run_kernel(kernel, q, k, v, None, 0.5),
                               flex.flex_attention(q, k, v, scale=0.5), rtol=0, atol=1e-12)
    assert kernel.asked == settings[:settings.index(fits) + 1]
    flex._run_kernel(kernel, q, k, v, None, 0.5)  # the same head shape: straight to the setting that fit
    assert kernel.asked[-1] == fits and len(kernel.asked) == settings.index(fits) + 2


@pytest.mark.usefixtures("no_tiles_remembered")
def test_tile_ladder_passes_other_errors_and_the_last_failure_on() -> None:
    q = torch.randn(1, 1, 12, 4, dtype=torch.float64)
    other = ShortOfSharedMemory(fits={"never": 1}, error="an unrelated compiler error")
    with pytest.raises(RuntimeError, match="unrelated"):
        flex._run_kernel(other, q, q, q, None, 0.5)
    assert other.asked == [None]
    nothing_fits = ShortOfSharedMemory(fits={"never": 1})
    with pytest.raises(RuntimeError, match="out of resource"):
        flex._run_kernel(nothing_fits, q, q, q, None, 0.5)
    assert nothing_fits.asked == [None, *flex.SMALLER_TILES] and flex._TILES_THAT_FIT == {}
