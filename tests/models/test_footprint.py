"""The memory estimate against what really runs: an upper bound of the peak the live-tensor tracker measures, for
every head, kernel and attention module, never absurdly loose; windows and views counted; the published settings
under the default cap.

The models here are narrow-backboned (``backbone_width=2``) so that the head, not the backbone, makes the peak:
what the estimate has to know (the head, ISA's padding, the kernels) is what decides the numbers.
"""

from __future__ import annotations

import pytest
import torch

from isanet.analysis.attention_bench import attention_module, estimated_bytes
from isanet.analysis.memory import peak_memory
from isanet.analysis.probe import capture
from isanet.data.transforms import rescale_size, scale_factor_size
from isanet.models import ISANet, ISANetConfig, footprint, zoo
from isanet.models.efficient.registry import METHODS
from isanet.models.heads import HEADS

pytestmark = pytest.mark.usefixtures("one_thread")
#: How far above the measured peak an estimate may be: it counts transients the allocator may not hold at once.
LOOSEST = 2.8


def head_bound(head: str, kernel: str, down_factor: tuple[int, int] = (4, 4)) -> ISANetConfig:
    return ISANetConfig(depth=10, backbone_width=2, channels=64, isa_channels=32, aux_channels=8, num_classes=3,
                        head=head, kernel=kernel, down_factor=down_factor, window_size=down_factor[0])


def measured(fn, x: torch.Tensor) -> int:
    """The tracker's peak of ``fn()`` plus the input it was given (the estimate counts the input too)."""
    return peak_memory(fn) + x.numel() * x.element_size()


def assert_bounds(estimate: int, peak: int) -> None:
    assert peak <= estimate <= LOOSEST * peak, f"estimate {estimate:,} for a measured peak of {peak:,}"


@pytest.mark.parametrize("kernel", ["matmul", "sdpa"])
@pytest.mark.parametrize("head", list(HEADS))
def test_the_estimate_bounds_the_measured_peak_of_every_head(head, kernel):
    config = head_bound(head, kernel)
    torch.manual_seed(0)
    model = ISANet(config).eval()
    x = torch.randn(1, 3, 120, 200)  # a 15 x 25 map: 4 divides neither side, so ISA and window pad

    def forward():
        with torch.no_grad():
            return model(x)
    assert_bounds(footprint.forward_bytes(config, 120, 200), measured(forward, x))
    if head == "isa":  # a capture keeps both hops' weights (of a dense head it keeps none: its rows are rebuilt)
        assert_bounds(footprint.forward_bytes(config, 120, 200, keep_attention=True),
                      measured(lambda: capture(model, x), x))


def test_isa_padding_is_counted_through_partition():
    config = head_bound("isa", "matmul", down_factor=(24, 24))  # a 15 x 25 map padded to 24 x 48
    model = ISANet(config).eval()
    x = torch.randn(1, 3, 120, 200)

    def forward():
        with torch.no_grad():
            return model(x)
    assert_bounds(footprint.forward_bytes(config, 120, 200), measured(forward, x))
    assert footprint.forward_bytes(config, 120, 200) > 2 * footprint.forward_bytes(head_bound("isa", "matmul"), 120,
                                                                                     200)


@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("kernel", ["matmul", "sdpa"])
@pytest.mark.parametrize("method", list(METHODS))
def test_the_bench_estimate_bounds_the_measured_peak_of_every_attention(method, kernel, backward):
    module = attention_module(method, kernel, 64, 32, (4, 4))
    x = torch.randn(1, 64, 21, 27)
    if backward:
        grad_x = x.detach().requires_grad_(True)

        def call():
            module.zero_grad(set_to_none=True)
            module(grad_x).sum().backward()
    else:
        def call():
            with torch.no_grad():
                return module(x)
    weights = sum(tensor.numel() * 4 for tensor in [*module.parameters(), *module.buffers()])
    assert_bounds(estimated_bytes(module, 1, 64, 21, 27, backward), measured(call, x) + weights)


def test_matmul_forms_the_affinity_and_sdpa_does_not():
    dense = {kernel: footprint.forward_bytes(ISANetConfig(head="dense", kernel=kernel), 1024, 1024)
             for kernel in ("matmul", "sdpa")}
    affinity = 4 * (128 * 128) ** 2  # the 1/8 map's 16384 x 16384 float32 weights
    assert dense["matmul"] > 2 * affinity > dense["sdpa"]  # matmul holds the logits and their softmax


def test_windows_and_views_are_counted():
    config = ISANetConfig.tiny()
    slide = footprint.logits(config, 1024, 2048, 1, "slide", (769, 769), (513, 513))
    assert slide.calls == 2 * 4 and "8 windows of 769x769" in slide.what
    views = [scale_factor_size(1024, 2048, ratio) for ratio in zoo.TTA_RATIOS]
    settings = zoo.get_entry("isanet_r50-d8_4xb2-40k_cityscapes-769x769").test
    ms_flip = footprint.scores(config, settings, (1024, 2048), views, ms_flip=True)
    assert ms_flip.calls == 2 * sum(footprint.logits(config, *view, 1, "slide", (769, 769), (513, 513)).calls
                                    for view in views) == 124
    assert ms_flip.bytes > footprint.scores(config, settings, (1024, 2048), [(1024, 2048)]).bytes
    with pytest.raises(footprint.MemoryCapError, match=r"a slide 2048x2048 prediction \(4194304 windows of 1x1\) "
                                                       r"takes 4,194,304 model calls, more than the 4,096"):
        footprint.logits(config, 2048, 2048, 1, "slide", (1, 1), (1, 1)).check(None)


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_published_setting_fits_the_default_cap(name):
    entry = zoo.get_entry(name)
    height, width = {"cityscapes": (1024, 2048), "ade20k": (512, 683), "voc": (375, 500)}[
        zoo.short_dataset_name(entry)]
    config, settings = entry.model.config(), entry.test
    single = footprint.scores(config, settings, (height, width), [rescale_size(height, width, settings.scale)])
    views = [scale_factor_size(height, width, ratio) for ratio in settings.ratios]
    for estimate in (single, footprint.scores(config, settings, (height, width), views, ms_flip=True)):
        estimate.check(footprint.DEFAULT_CAP_BYTES)
