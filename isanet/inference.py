"""Prediction: logits at input size from a whole image, or from overlapping sliding windows.

Both follow mmseg's ``EncoderDecoder``: whole mode runs the model once; slide mode runs it on a grid of
``crop_size`` windows ``stride`` apart (the last row/column of windows pushed back inside the image, windows
shrunk to the image when it is smaller than a crop) and averages the overlapping logits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


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


def slide_windows(height: int, width: int, crop_size: tuple[int, int],
                  stride: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """mmseg's window grid: ``(y1, y2, x1, x2)`` of every crop, row by row."""
    (crop_h, crop_w), (stride_h, stride_w) = crop_size, stride
    if min(crop_h, crop_w, stride_h, stride_w) < 1:
        raise ValueError(f"crop_size and stride must be positive, got {crop_size} and {stride}")
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
        crop_logits = model(x[:, :, y1:y2, x1:x2])
        if logits is None:
            logits = x.new_zeros((x.shape[0], crop_logits.shape[1], *x.shape[2:]))
            count = x.new_zeros((1, 1, *x.shape[2:]))
        logits[:, :, y1:y2, x1:x2] += crop_logits
        count[:, :, y1:y2, x1:x2] += 1
    return logits / count


def predict(model: nn.Module, x: torch.Tensor, mode: str = "whole", crop_size: tuple[int, int] | None = None,
            stride: tuple[int, int] | None = None) -> torch.Tensor:
    """Logits (``N x K x H x W``) for a normalised batch ``x``, in eval mode and without gradients.

    ``mode="whole"`` runs the model on the full input; ``mode="slide"`` needs ``crop_size`` and ``stride``
    (a zoo entry's ``test_cfg`` has both).
    """
    if x.dim() != 4:
        raise ValueError(f"predict expects an N x 3 x H x W batch, got shape {tuple(x.shape)}")
    with evaluating(model):
        if mode == "whole":
            return model(x)
        if mode == "slide":
            if crop_size is None or stride is None:
                raise ValueError("mode='slide' needs crop_size and stride, e.g. (769, 769) and (513, 513)")
            return slide_predict(model, x, tuple(crop_size), tuple(stride))
    raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
