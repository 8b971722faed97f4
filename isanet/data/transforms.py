"""mmseg 1.2.2's data transforms, written out in numpy/OpenCV so their every rounding is visible.

Test time: a keep-ratio ``Resize`` to the config's scale (mmcv's ``rescale_size`` rule: factor =
min(long/long_side, short/short_side), sizes rounded with ``int(x + 0.5)``, OpenCV bilinear), then the data
preprocessor's RGB normalisation in float32. Training: ``RandomResize`` -> ``RandomCrop`` (``cat_max_ratio``)
-> ``RandomFlip`` -> ``PhotoMetricDistortion`` -> padding to the crop, each drawing from an explicit
``numpy.random.Generator`` in the same order and with the same ranges as mmseg draws from ``np.random``, so a
trainer that seeds the generator reproduces its augmentation exactly. Images here are RGB (mmseg works in BGR;
every step is channel-symmetric or converts through HSV, which gives the same numbers either way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from isanet.data.datasets import IGNORE_INDEX
from isanet.models.zoo import ZooEntry

#: mmseg's ImageNet normalisation (RGB order), used by every published ISANet config: the training default,
#: what pictures are shown back with, and what benchmark inputs are made like.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

Size = tuple[int, int]  # (height, width)


def rescale_size(height: int, width: int, scale: float | Sequence[int]) -> Size:
    """mmcv's ``rescale_size``: ``(h, w)`` after a keep-ratio rescale by a factor or into a ``(long, short)``
    box (the box's order does not matter: its larger side bounds the image's longer side)."""
    if isinstance(scale, (int, float)):
        if scale <= 0:
            raise ValueError(f"invalid scale factor {scale}: it must be positive")
        factor = float(scale)
    else:
        factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def scale_factor_size(height: int, width: int, factor: float) -> Size:
    """``(h, w)`` of mmcv's ``Resize(scale_factor=factor, keep_ratio=True)`` (the TTA resize).

    mmcv first rounds ``(w, h) * factor`` to a target box and then keep-ratio rescales into that box, which
    can differ by a pixel from rounding ``(h, w) * factor`` directly.
    """
    return rescale_size(height, width, (int(width * factor + 0.5), int(height * factor + 0.5)))


def resize_image(image: np.ndarray, size: Size) -> np.ndarray:
    """OpenCV bilinear resize to ``(h, w)``, as ``mmcv.imresize`` does for images."""
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def resize_label(label: np.ndarray, size: Size) -> np.ndarray:
    """OpenCV nearest-neighbour resize to ``(h, w)``: labels keep their class values."""
    return cv2.resize(label, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``H x W x 3`` uint8 RGB -> ``3 x H x W`` float32 ``(x - mean) / std``, the data preprocessor's arithmetic."""
    pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()  # H x W x 3 -> 3 x H x W
    return (pixels - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)  # 3 -> 3 x 1 x 1


def pad_to(array: np.ndarray, size: Size, value: int) -> np.ndarray:
    """Pad bottom/right up to ``size`` with ``value`` (mmcv's ``impad``, constant mode)."""
    pad_h, pad_w = size[0] - array.shape[0], size[1] - array.shape[1]
    widths = [(0, max(pad_h, 0)), (0, max(pad_w, 0))] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, constant_values=value)


@dataclass(frozen=True)
class TestTransform:
    """Keep-ratio resize into ``scale`` (a ``(long, short)`` box such as ``(2048, 1024)``) and normalise."""

    scale: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def size(self, height: int, width: int) -> Size:
        return rescale_size(height, width, self.scale)

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """``H x W x 3`` uint8 RGB -> normalised ``3 x h x w`` float tensor at the test scale."""
        return normalize(resize_image(image, self.size(*image.shape[:2])), self.mean, self.std)


def random_resize(image: np.ndarray, label: np.ndarray, scale: Sequence[int], ratio_range: tuple[float, float],
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """mmcv's ``RandomResize``: box = ``int(scale * ratio)`` with ratio uniform in the range, keep-ratio resize."""
    low, high = ratio_range
    ratio = rng.random() * (high - low) + low
    size = rescale_size(*image.shape[:2], (int(scale[0] * ratio), int(scale[1] * ratio)))
    return resize_image(image, size), resize_label(label, size)


def random_crop_box(label: np.ndarray, crop_size: Size, cat_max_ratio: float, rng: np.random.Generator,
                    ignore_index: int = IGNORE_INDEX) -> tuple[int, int, int, int]:
    """mmseg's ``RandomCrop.crop_bbox``: ``(y1, y2, x1, x2)``; with ``cat_max_ratio < 1`` up to 10 re-draws
    while one class (ignore excluded) fills at least that share of the crop or the crop has a single class.
    As in mmseg, the box drawn after the 10th failed check is used as it is."""
    margin_h, margin_w = max(label.shape[0] - crop_size[0], 0), max(label.shape[1] - crop_size[1], 0)

    def draw() -> tuple[int, int, int, int]:
        y1, x1 = int(rng.integers(0, margin_h + 1)), int(rng.integers(0, margin_w + 1))
        return y1, y1 + crop_size[0], x1, x1 + crop_size[1]

    box = draw()
    if cat_max_ratio < 1.0:
        for _ in range(10):
            values, counts = np.unique(label[box[0]:box[1], box[2]:box[3]], return_counts=True)
            counts = counts[values != ignore_index]
            if len(counts) > 1 and np.max(counts) / np.sum(counts) < cat_max_ratio:
                break
            box = draw()
    return box


def _scale_and_shift(pixels: np.ndarray, alpha: float = 1, beta: float = 0) -> np.ndarray:
    """``clip(x * alpha + beta)`` in float32, truncated back to uint8 (mmseg's ``convert``)."""
    return np.clip(pixels.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def _contrast(image: np.ndarray, rng: np.random.Generator, contrast_range: tuple[float, float]) -> np.ndarray:
    return _scale_and_shift(image, alpha=rng.uniform(*contrast_range)) if rng.integers(2) else image


def _saturation(image: np.ndarray, rng: np.random.Generator, saturation_range: tuple[float, float]) -> np.ndarray:
    if not rng.integers(2):
        return image
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hsv[:, :, 1] = _scale_and_shift(hsv[:, :, 1], alpha=rng.uniform(*saturation_range))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _hue(image: np.ndarray, rng: np.random.Generator, hue_delta: int) -> np.ndarray:
    if not rng.integers(2):
        return image
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + rng.integers(-hue_delta, hue_delta)) % 180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def photometric_distortion(image: np.ndarray, rng: np.random.Generator, brightness_delta: int = 32,
                           contrast_range: tuple[float, float] = (0.5, 1.5),
                           saturation_range: tuple[float, float] = (0.5, 1.5), hue_delta: int = 18) -> np.ndarray:
    """mmseg's ``PhotoMetricDistortion``: each step applied with probability 1/2 in this order — brightness,
    then a coin for the mode (1: contrast now, 0: contrast last), saturation, hue, contrast if mode 0."""
    if rng.integers(2):
        image = _scale_and_shift(image, beta=rng.uniform(-brightness_delta, brightness_delta))
    contrast_first = rng.integers(2) == 1
    if contrast_first:
        image = _contrast(image, rng, contrast_range)
    image = _hue(_saturation(image, rng, saturation_range), rng, hue_delta)
    if not contrast_first:
        image = _contrast(image, rng, contrast_range)
    return image


@dataclass(frozen=True)
class TrainTransform:
    """mmseg's training pipeline, from a decoded ``(image, label)`` to the tensors the model trains on.

    ``crop_size`` is ``(h, w)``; ``scale`` is the ``RandomResize`` box. ``pad_before_normalize`` tells where
    the crop is padded up to ``crop_size``: the VOC configs have a ``Pad`` transform (image 0 in pixel space),
    the others leave it to the data preprocessor, which pads the *normalised* image with 0 (the mean colour);
    labels get 255 either way.
    """

    crop_size: Size
    scale: tuple[int, int]
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    flip_prob: float = 0.5
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pad_before_normalize: bool = False
    ignore_index: int = IGNORE_INDEX

    def augment(self, image: np.ndarray, label: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The uint8 steps: resize, crop, flip, photometric distortion (and the ``Pad`` step if configured)."""
        image, label = random_resize(image, label, self.scale, self.ratio_range, rng)
        y1, y2, x1, x2 = random_crop_box(label, self.crop_size, self.cat_max_ratio, rng, self.ignore_index)
        image, label = image[y1:y2, x1:x2], label[y1:y2, x1:x2]
        if rng.random() < self.flip_prob:
            image, label = image[:, ::-1], label[:, ::-1]
        image = photometric_distortion(np.ascontiguousarray(image), rng)
        label = np.ascontiguousarray(label)
        if self.pad_before_normalize:
            image, label = pad_to(image, self.crop_size, 0), pad_to(label, self.crop_size, self.ignore_index)
        return image, label

    def __call__(self, image: np.ndarray, label: np.ndarray,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised ``3 x h x w`` float32 image and ``h x w`` int64 label, both exactly ``crop_size``."""
        image, label = self.augment(image, label, rng)
        pixels = normalize(image, self.mean, self.std)
        pad = (0, max(self.crop_size[1] - pixels.shape[2], 0), 0, max(self.crop_size[0] - pixels.shape[1], 0))
        return F.pad(pixels, pad, value=0.0), torch.from_numpy(pad_to(label, self.crop_size, self.ignore_index)
                                                               .astype(np.int64))


def transforms_from_entry(entry: ZooEntry) -> tuple[TrainTransform, TestTransform]:
    """The training and test transforms of a zoo entry: its recipe's augmentation, its test scale, and the data
    preprocessor's normalisation (one mean/std for both)."""
    recipe, test = entry.train, entry.test
    train_transform = TrainTransform(
        crop_size=recipe.crop_size, scale=recipe.resize_scale, ratio_range=recipe.ratio_range,
        cat_max_ratio=recipe.cat_max_ratio, flip_prob=recipe.flip_prob, mean=test.mean, std=test.std,
        pad_before_normalize=recipe.pad_before_normalize)
    return train_transform, TestTransform(test.scale, test.mean, test.std)
