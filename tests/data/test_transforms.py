"""mmseg's transforms: mmcv's size rule, normalisation, and each random training step with known draws."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import isanet
from isanet.data import transforms as T
from isanet.data.transforms import IMAGENET_MEAN as MEAN
from isanet.data.transforms import IMAGENET_STD as STD


class ScriptedRng:
    """Stands in for ``numpy.random.Generator``, returning scripted draws and recording the calls."""

    def __init__(self, integers=(), uniform=(), random=()):
        self.queues = {"integers": list(integers), "uniform": list(uniform), "random": list(random)}
        self.calls: list[tuple] = []

    def _next(self, kind, *args):
        self.calls.append((kind, *args))
        return self.queues[kind].pop(0)

    def integers(self, low, high=None):
        return self._next("integers", low, high)

    def uniform(self, low, high):
        return self._next("uniform", low, high)

    def random(self):
        return self._next("random")


def test_rescale_size_follows_mmcv():
    assert T.rescale_size(1024, 2048, (2048, 1024)) == (1024, 2048)
    assert T.rescale_size(1024, 2048, (2049, 1025)) == (1025, 2049)
    assert T.rescale_size(375, 500, (2048, 512)) == (512, 683)  # factor min(2048/500, 512/375); 682.67 -> 683
    assert T.rescale_size(375, 500, (512, 2048)) == (512, 683)  # the box's order does not matter
    assert T.rescale_size(3, 5, 0.5) == (2, 3)  # int(x + 0.5): 1.5 -> 2, 2.5 -> 3
    with pytest.raises(ValueError, match="positive"):
        T.rescale_size(3, 5, 0.0)


def test_scale_factor_size_rounds_twice_like_mmcv_resize():
    # mmcv first rounds (63, 50) * 0.75 to the box (47, 38), then keep-ratio rescales into it: 37 rows, not 38
    assert T.scale_factor_size(50, 63, 0.75) == (37, 47)
    assert (int(50 * 0.75 + 0.5), int(63 * 0.75 + 0.5)) == (38, 47)
    assert T.scale_factor_size(1024, 2048, 1.75) == (1792, 3584)


def test_resizes_are_opencv_bilinear_and_nearest():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    assert np.array_equal(T.resize_image(image, (17, 23)), cv2.resize(image, (23, 17), interpolation=cv2.INTER_LINEAR))
    label = rng.choice(np.array([0, 3, 255], np.uint8), (30, 41))
    resized = T.resize_label(label, (61, 83))
    assert resized.shape == (61, 83) and set(np.unique(resized)) <= {0, 3, 255}


def test_normalize_is_rgb_minus_mean_over_std_in_float32():
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = (255, 0, 0)
    pixels = T.normalize(image, MEAN, STD)
    assert pixels.dtype == torch.float32 and pixels.shape == (3, 2, 3)
    expected = torch.tensor([(255 - 123.675) / 58.395, -116.28 / 57.12, -103.53 / 57.375])
    torch.testing.assert_close(pixels[:, 0, 0], expected)
    torch.testing.assert_close(pixels[:, 1, 2], torch.tensor([-123.675 / 58.395, -116.28 / 57.12, -103.53 / 57.375]))


def test_test_transform_resizes_into_the_scale_and_normalises():
    image = np.full((375, 500, 3), 200, np.uint8)
    pixels = T.TestTransform((2048, 512), MEAN, STD)(image)
    assert pixels.shape == (3, 512, 683)
    torch.testing.assert_close(pixels[:, 100, 100], (torch.tensor(200.0) - torch.tensor(MEAN)) / torch.tensor(STD))


def test_random_resize_uses_int_of_scale_times_ratio():
    rng = ScriptedRng(random=[0.25])  # ratio = 0.25 * (2.0 - 0.5) + 0.5 = 0.875
    image, label = np.zeros((100, 200, 3), np.uint8), np.zeros((100, 200), np.uint8)
    resized, resized_label = T.random_resize(image, label, (2048, 512), (0.5, 2.0), rng)
    assert resized.shape[:2] == resized_label.shape == T.rescale_size(100, 200, (1792, 448)) == (448, 896)


def test_random_crop_redraws_while_one_class_dominates():
    label = np.zeros((10, 10), np.uint8)
    label[:, 8:] = 1  # only crops starting at x >= 4 have class 1 in >= 25% of their (4 x 4) pixels... and x=6
    label[0, :] = 255
    # first box x=0 (class 0 only), second x=5 (cols 5-8: 0,0,0,1 -> 75% class 0: not below 0.75), third x=6
    rng = ScriptedRng(integers=[0, 0, 0, 5, 0, 6])
    assert T.random_crop_box(label, (4, 4), 0.75, rng) == (0, 4, 6, 10)
    assert rng.calls[:2] == [("integers", 0, 7), ("integers", 0, 7)]
    # never satisfied: ten checks, eleven boxes drawn, the last one is used as it is
    rng = ScriptedRng(integers=[0, 0] * 10 + [3, 2])
    assert T.random_crop_box(np.zeros((10, 10), np.uint8), (4, 4), 0.75, rng) == (3, 7, 2, 6)
    assert len(rng.calls) == 22
    # cat_max_ratio 1 draws once; a crop larger than the image starts at 0
    rng = ScriptedRng(integers=[0, 0])
    assert T.random_crop_box(np.zeros((3, 3), np.uint8), (4, 4), 1.0, rng) == (0, 4, 0, 4)
    assert rng.calls == [("integers", 0, 1), ("integers", 0, 1)]


def test_photometric_distortion_order_and_ranges():
    grey = np.full((1, 1, 3), 100, np.uint8)
    rng = ScriptedRng(integers=[0, 0, 0, 0, 0])  # no step fires: brightness, mode 0, saturation, hue, contrast
    assert np.array_equal(T.photometric_distortion(grey, rng), grey)
    # brightness +30, then mode 1: contrast 0.5 before saturation and hue -> (100 + 30) * 0.5
    rng = ScriptedRng(integers=[1, 1, 1, 0, 0], uniform=[30.0, 0.5])
    assert T.photometric_distortion(grey, rng).ravel().tolist() == [65, 65, 65]
    assert [call[0] for call in rng.calls] == ["integers", "uniform", "integers", "integers", "uniform", "integers",
                                               "integers"]
    assert [call for call in rng.calls if call[0] == "uniform"] == [("uniform", -32, 32), ("uniform", 0.5, 1.5)]
    # mode 0: the contrast coin comes after saturation and hue
    rng = ScriptedRng(integers=[0, 0, 0, 0, 1], uniform=[0.5])
    assert T.photometric_distortion(grey, rng).ravel().tolist() == [50, 50, 50] and rng.calls[-1][0] == "uniform"
    # clipping in pixel space makes the order visible: contrast 1.5 then saturation 0.5, and the reverse
    pink = np.array([[[200, 100, 100]]], np.uint8)
    contrast_first = T.photometric_distortion(pink, ScriptedRng(integers=[0, 1, 1, 1, 0], uniform=[1.5, 0.5]))
    contrast_last = T.photometric_distortion(pink, ScriptedRng(integers=[0, 0, 1, 0, 1], uniform=[0.5, 1.5]))
    assert contrast_first.ravel().tolist() == [255, 203, 203]  # (255, 150, 150): S 105 -> 52, V 255
    assert contrast_last.ravel().tolist() == [255, 226, 226]  # S 127 -> 63: (200, 151, 151), then * 1.5


def test_photometric_hue_and_saturation_in_hsv():
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 0] = 255
    rng = ScriptedRng(integers=[0, 0, 0, 1, 60, 0])  # hue coin, then delta 60 (of 180) = 120 degrees
    assert T.photometric_distortion(red, rng).ravel().tolist() == [0, 255, 0]
    assert ("integers", -18, 18) in rng.calls
    rng = ScriptedRng(integers=[0, 0, 1, 0, 0], uniform=[0.5])
    assert T.photometric_distortion(red, rng).ravel().tolist() == [255, 128, 128]


def test_train_transform_is_reproducible_and_always_crop_sized():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    label = rng.integers(0, 5, (90, 120)).astype(np.uint8)
    transform = T.TrainTransform(crop_size=(64, 80), scale=(160, 60))
    for seed in range(5):
        x, y = transform(image, label, np.random.default_rng(seed))
        again = transform(image, label, np.random.default_rng(seed))
        assert torch.equal(x, again[0]) and torch.equal(y, again[1])
        assert x.shape == (3, 64, 80) and x.dtype == torch.float32 and y.shape == (64, 80) and y.dtype == torch.int64
    assert not torch.equal(transform(image, label, np.random.default_rng(1))[0], x)


def test_train_transform_flip_and_both_paddings():
    label = np.tile(np.arange(6, dtype=np.uint8), (4, 1))
    image = np.full((4, 6, 3), 50, np.uint8)
    common = dict(crop_size=(6, 8), scale=(6, 4), ratio_range=(1.0, 1.0), cat_max_ratio=1.0, flip_prob=1.0)
    x, y = T.TrainTransform(**common)(image, label, np.random.default_rng(0))
    assert y[:4, :6].tolist() == [[5, 4, 3, 2, 1, 0]] * 4 and (y[4:] == 255).all() and (y[:, 6:] == 255).all()
    assert (x[:, 4:] == 0).all() and (x[:, :, 6:] == 0).all()  # the preprocessor pads the normalised image with 0
    x, _ = T.TrainTransform(**common, pad_before_normalize=True)(image, label, np.random.default_rng(0))
    torch.testing.assert_close(x[:, 5, 7], -torch.tensor(MEAN) / torch.tensor(STD))  # VOC's Pad: pixel value 0


def test_transforms_from_zoo_entries():
    voc_train, voc_test = T.transforms_from_entry(isanet.get_entry("isanet_r50-d8_4xb4-20k_voc12aug-512x512"))
    assert voc_train.pad_before_normalize and voc_train.crop_size == (512, 512) and voc_train.scale == (2048, 512)
    assert voc_test.scale == (2048, 512) and voc_test.mean == MEAN and voc_test.std == STD
    city_train, city_test = T.transforms_from_entry(isanet.get_entry("isanet_r50-d8_4xb2-40k_cityscapes-769x769"))
    assert not city_train.pad_before_normalize and city_train.crop_size == (769, 769)
    assert city_train.cat_max_ratio == 0.75 and city_train.ratio_range == (0.5, 2.0) and city_test.scale == (2049, 1025)
