"""Prediction: logits at input size from a whole image, or from overlapping sliding windows.

Both follow mmseg's ``EncoderDecoder``: whole mode runs the model once; slide mode runs it on a grid of
``crop_size`` windows ``stride`` apart (the last row/column of windows pushed back inside the image, windows
shrunk to the image when it is smaller than a crop) and averages the overlapping logits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from isanet.data.transforms import (
    TestTransform,
    normalize,
    resize_image,
    scale_factor_size,
)
from isanet.runtime import autocast, resolve_precision


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode without gradients, restoring its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def full_precision(logits: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 logits (an autocast forward) as fp32; fp32 and fp64 ones as they are (the fp64 parity check)."""
    return logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits


def slide_windows(height: int, width: int, crop_size: tuple[int, int],
                  stride: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """mmseg's window grid: ``(y1, y2, x1, x2)`` of every crop, row by row."""
    (crop_h, crop_w), (stride_h, stride_w) = crop_size, stride
    if min(crop_h, crop_w, stride_h, stride_w) < 1:
        raise ValueError(f"crop_size and stride must be positive, got {crop_size} and {stride}")
    if stride_h > crop_h or stride_w > crop_w:
        raise ValueError(f"stride {tuple(stride)} is larger than crop_size {tuple(crop_size)}: the pixels between "
                         "windows would be predicted by none (NaN logits); use a stride at most the crop size")
    rows = max(height - crop_h + stride_h - 1, 0) // stride_h + 1
    cols = max(width - crop_w + stride_w - 1, 0) // stride_w + 1
    windows = []
    for row in range(rows):
        for col in range(cols):
            y2, x2 = min(row * stride_h + crop_h, height), min(col * stride_w + crop_w, width)
            windows.append((max(y2 - crop_h, 0), y2, max(x2 - crop_w, 0), x2))
    return windows


def slide_predict(model: nn.Module, x: torch.Tensor, crop_size: tuple[int, int],
                  stride: tuple[int, int]) -> torch.Tensor:
    """Average of the model's logits over the sliding windows (each pixel divided by its window count)."""
    logits = count = None
    for y1, y2, x1, x2 in slide_windows(x.shape[2], x.shape[3], crop_size, stride):
        crop_logits = full_precision(model(x[:, :, y1:y2, x1:x2]))  # the sum is fp32 whatever the model ran in
        if logits is None:
            logits = crop_logits.new_zeros((x.shape[0], crop_logits.shape[1], *x.shape[2:]))
            count = x.new_zeros((1, 1, *x.shape[2:]))
        logits[:, :, y1:y2, x1:x2] += crop_logits
        count[:, :, y1:y2, x1:x2] += 1
    return logits / count


def as_batch(model: nn.Module, x) -> torch.Tensor:
    """``x`` as a float ``N x 3 x H x W`` tensor in the model's dtype and on its device, or a ValueError that
    says what to do. Integer pixels are refused rather than guessed at: ``predict`` takes *normalised* input
    (mean/std applied), and an uint8 picture fed as is gives a confident, wrong segmentation."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"predict expects a tensor (or NumPy array) of shape N x 3 x H x W, got a "
                         f"{type(x).__name__}: stack the images into one batch, e.g. torch.stack(images)")
    if not x.is_floating_point():
        raise ValueError(f"predict expects normalised float pixels, got dtype {x.dtype}: for an H x W x 3 uint8 "
                         "picture use predict_image (it resizes and normalises), or normalise it yourself")
    if x.dim() != 4:
        hint = " (one image? add a batch dimension: x[None])" if x.dim() == 3 else ""
        raise ValueError(f"predict expects an N x 3 x H x W batch, got shape {tuple(x.shape)}{hint}")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"predict got an empty batch (shape {tuple(x.shape)}): nothing to predict")
    if x.shape[1] != 3:
        raise ValueError(f"predict expects 3 colour channels (RGB), got shape {tuple(x.shape)}")
    weight = next(model.parameters(), None)
    return x if weight is None else x.to(device=weight.device, dtype=weight.dtype)


def predict(model: nn.Module, x: torch.Tensor, mode: str = "whole", crop_size: tuple[int, int] | None = None,
            stride: tuple[int, int] | None = None, precision: str = "fp32") -> torch.Tensor:
    """Logits (``N x K x H x W``, float32) for a normalised batch ``x``, in eval mode and without gradients.

    ``mode="whole"`` runs the model on the full input; ``mode="slide"`` needs ``crop_size`` and ``stride``
    (a zoo entry's ``test_cfg`` has both). ``x`` may be a float tensor or NumPy array of any float dtype; it is
    cast to the model's dtype and device (see :func:`as_batch` for what is refused and why). ``precision`` is
    ``"fp32"``, ``"bf16"`` (CPUs with native bf16, GPUs) or ``"fp16"`` (GPUs): the model runs under autocast,
    about twice as fast where the hardware has it, and an unsupported choice falls back to fp32 with a warning
    (:func:`isanet.runtime.resolve_precision`).
    """
    x = as_batch(model, x)
    if mode not in ("whole", "slide"):
        raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
    if mode == "slide" and (crop_size is None or stride is None):
        raise ValueError("mode='slide' needs crop_size and stride, e.g. (769, 769) and (513, 513)")
    precision = resolve_precision(precision, x.device)
    with evaluating(model), autocast(precision, x.device):
        if mode == "whole":
            return full_precision(model(x))
        return slide_predict(model, x, tuple(crop_size), tuple(stride))


# ---- From an original image to scores at its own size: single scale, and mmseg's multi-scale + flip TTA ----

TTA_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # img_ratios of every mmseg 1.x dataset config's tta_pipeline


def _logits(model: nn.Module, pixels: torch.Tensor, mode: str, crop_size: tuple[int, int] | None,
            stride: tuple[int, int] | None, precision: str) -> torch.Tensor:
    """``1 x K x h x w`` logits of one normalised ``3 x h x w`` image, computed on the model's device."""
    device = next(model.parameters(), torch.empty(0)).device
    return predict(model, pixels[None].to(device), mode, crop_size, stride, precision)


def _to_original(logits: torch.Tensor, size: tuple[int, int], model: nn.Module,
                 align_corners: bool | None) -> torch.Tensor:
    """mmseg's ``postprocess_result`` resize: bilinear to the original ``size`` with the config's
    ``align_corners`` (the model's own unless one is given)."""
    corners = getattr(model, "align_corners", False) if align_corners is None else align_corners
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=corners)


def predict_image(model: nn.Module, image: np.ndarray, scale: tuple[int, int], mean: tuple[float, ...],
                  std: tuple[float, ...], mode: str = "whole", crop_size: tuple[int, int] | None = None,
                  stride: tuple[int, int] | None = None, align_corners: bool | None = None,
                  precision: str = "fp32") -> torch.Tensor:
    """``K x H x W`` logits for an original ``H x W x 3`` uint8 RGB image, at its own size.

    mmseg's test path: keep-ratio resize into the test ``scale``, normalise, whole/slide inference, then the
    logits resized back to the original shape (bilinear, the config's ``align_corners``).
    """
    pixels = TestTransform(tuple(scale), tuple(mean), tuple(std))(image)
    logits = _logits(model, pixels, mode, crop_size, stride, precision)
    return _to_original(logits, image.shape[:2], model, align_corners)[0]


def predict_ms_flip(model: nn.Module, image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...],
                    mode: str = "whole", crop_size: tuple[int, int] | None = None,
                    stride: tuple[int, int] | None = None, ratios: tuple[float, ...] = TTA_RATIOS,
                    align_corners: bool | None = None, precision: str = "fp32") -> torch.Tensor:
    """``K x H x W`` class probabilities for an original image with mmseg 1.x's multi-scale + flip TTA.

    mmseg 1.2.2's ``tta_pipeline`` has no test-scale resize: each ratio is a keep-ratio
    ``Resize(scale_factor=ratio)`` of the image *as loaded* (mmcv's two-step rounding, see
    :func:`isanet.data.transforms.scale_factor_size`), taken as is and mirrored. Every view is predicted (whole or
    slide), un-mirrored, resized to the original shape, and ``SegTTAModel`` averages their **softmax
    probabilities** (not logits), summed in its order: ratio by ratio, unflipped before flipped. The argmax
    of the result is mmseg's TTA prediction.
    """
    def probabilities(ratio: float, flip: bool) -> torch.Tensor:
        view = resize_image(image, scale_factor_size(*image.shape[:2], ratio))
        logits = _logits(model, normalize(view[:, ::-1] if flip else view, mean, std), mode, crop_size, stride,
                         precision)
        logits = logits.flip(dims=(3,)) if flip else logits
        return _to_original(logits, image.shape[:2], model, align_corners)[0].softmax(dim=0)

    views = [(ratio, flip) for ratio in ratios for flip in (False, True)]
    return sum(probabilities(ratio, flip) for ratio, flip in views) / len(views)
