import numpy as np
import pytest
import torch
from torch import nn

import isanet
from isanet.analysis.compare import max_relative_difference, pixel_agreement
from isanet.evaluation import inference
from isanet.evaluation.inference import Predictor, image_logits, slide_windows


class PositionModel(nn.Module):
    """Logits that are a fixed function of the input pixels: channel k = (k+1) * the first input channel."""

    def forward(self, x):
        return torch.cat([x[:, :1] * (k + 1) for k in range(3)], dim=1)


def test_slide_windows_follow_mmseg_grid():
    assert slide_windows(10, 10, (4, 4), (3, 3)) == [
        (y1, y1 + 4, x1, x1 + 4) for y1 in (0, 3, 6) for x1 in (0, 3, 6)]
    # the last window is pushed back inside the image; a crop larger than the image shrinks to it
    assert slide_windows(11, 5, (6, 8), (4, 4))[-1] == (5, 11, 0, 5)
    assert slide_windows(3, 3, (5, 5), (2, 2)) == [(0, 3, 0, 3)]
    with pytest.raises(ValueError, match="positive"):
        slide_windows(3, 3, (0, 5), (2, 2))


def test_slide_of_a_pointwise_model_equals_whole():
    x = torch.randn(2, 3, 23, 31)
    model = PositionModel()
    whole = isanet.predict(model, x)
    slide = isanet.predict(model, x, mode="slide", crop_size=(10, 12), stride=(7, 5))
    torch.testing.assert_close(slide, whole)
    assert whole.shape == (2, 3, 23, 31) and torch.equal(whole[:, 2], 3 * x[:, 0])


def test_slide_averages_overlapping_windows():
    class CountingModel(nn.Module):
        calls = 0

        def forward(self, x):
            CountingModel.calls += 1
            return torch.full_like(x[:, :1], float(CountingModel.calls))

    logits = isanet.predict(CountingModel(), torch.zeros(1, 3, 4, 6), mode="slide", crop_size=(4, 4),
                            stride=(2, 2))
    # windows x=[0,4) -> 1 and x=[2,6) -> 2; columns 2-3 are covered by both
    assert logits[0, 0, 0].tolist() == [1, 1, 1.5, 1.5, 2, 2]


def test_predict_restores_training_mode_and_checks_arguments(tiny_model):
    tiny_model.train()
    logits = isanet.predict(tiny_model, torch.randn(1, 3, 32, 32))
    assert tiny_model.training and logits.shape == (1, 5, 32, 32) and not logits.requires_grad
    with pytest.raises(ValueError, match="needs crop_size and stride"):
        isanet.predict(tiny_model, torch.randn(1, 3, 32, 32), mode="slide")
    with pytest.raises(ValueError, match="mode must be"):
        isanet.predict(tiny_model, torch.randn(1, 3, 32, 32), mode="tiles")


@pytest.fixture()
def native_bf16(monkeypatch):
    """bf16 as on a CPU with AVX-512 BF16 (the CI's CPU may lack it; autocast computes the same numbers, slower)."""
    from isanet import runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)


def test_bf16_predict_returns_fp32_logits_close_to_fp32(tiny_model, native_bf16, one_thread):
    x = torch.randn(2, 3, 128, 160, generator=torch.Generator().manual_seed(0))
    fp32 = isanet.predict(tiny_model, x)
    bf16 = isanet.predict(tiny_model, x, precision="bf16")
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert not torch.equal(bf16, fp32)  # it did run in bf16
    assert max_relative_difference(bf16, fp32) < 0.05  # bf16 keeps 8 significant bits
    # Random weights leave many pixels nearly tied between classes, the hardest case for argmax agreement:
    # measured 99.0 % here; the published-size figure (>= 99.5 %) is in benchmarks/README.md.
    assert pixel_agreement(bf16, fp32) > 0.98


def test_bf16_slide_accumulates_in_fp32(tiny_model, native_bf16, one_thread):
    x = torch.randn(1, 3, 128, 160, generator=torch.Generator().manual_seed(1))
    windows = dict(mode="slide", crop_size=(96, 96), stride=(64, 64))
    bf16 = isanet.predict(tiny_model, x, precision="bf16", **windows)
    fp32 = isanet.predict(tiny_model, x, **windows)
    assert bf16.dtype == torch.float32
    assert pixel_agreement(bf16, fp32) > 0.98


def test_fp16_on_cpu_falls_back_to_fp32_exactly(tiny_model):
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    with pytest.warns(UserWarning, match="fp16 on cpu: fp16 autocast is for CUDA; on CPU use bf16; running in fp32"):
        fallback = isanet.predict(tiny_model, x, precision="fp16")
    assert torch.equal(fallback, isanet.predict(tiny_model, x))


# ---- the one Predictor: same logits as the loose-argument path, precision resolved once, settings checked once


def test_predictor_logits_equal_the_loose_path_whole_and_slide(tiny_model):
    x = torch.randn(1, 3, 32, 40)
    settings = isanet.get_entry("isanet_r50-d8_4xb2-40k_cityscapes-769x769").test.replace(
        crop_size=(20, 24), stride=(13, 11))
    slide = Predictor(tiny_model, settings)
    whole = Predictor(tiny_model, settings.replace(mode="whole"))
    assert torch.equal(slide.logits(x), isanet.predict(tiny_model, x, "slide", (20, 24), (13, 11)))
    assert torch.equal(whole.logits(x), isanet.predict(tiny_model, x))
    image = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    small = settings.replace(scale=(64, 32))
    assert torch.equal(Predictor(tiny_model, small).scores(image),
                       image_logits(tiny_model, image, (64, 32), small.mean, small.std, "slide", (20, 24), (13, 11),
                                    align_corners=small.align_corners))


def test_precision_is_resolved_once_per_predictor(tiny_model, monkeypatch):
    calls = []
    monkeypatch.setattr(inference, "resolve_precision", lambda *args: calls.append(args) or "fp32")
    settings = isanet.get_entry("isanet_r50-d8_4xb4-20k_voc12aug-512x512").test.replace(scale=(32, 32),
                                                                                         ratios=(0.5, 1.0))
    predictor = Predictor(tiny_model, settings, precision="fp32")
    image = np.zeros((24, 24, 3), np.uint8)
    for _ in range(3):
        predictor.class_ids(image, ms_flip=True)
    assert len(calls) == 1


def test_bad_settings_are_refused_at_construction(tiny_model):
    voc = isanet.get_entry("isanet_r50-d8_4xb4-20k_voc12aug-512x512").test
    with pytest.raises(ValueError, match="^mode 'slide' needs a crop size and stride"):
        voc.replace(mode="slide")
    with pytest.raises(ValueError, match="^mode must be 'whole' or 'slide', got 'tiles'$"):
        voc.replace(mode="tiles")
    with pytest.raises(ValueError, match=r"^precision 'half': use one of"):
        Predictor(tiny_model, voc, precision="half")
    with pytest.raises(ValueError, match="^settings must be TestSettings"):
        Predictor(tiny_model, {"mode": "whole"})
