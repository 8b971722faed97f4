"""Prediction: logits at input size from a whole image, or from overlapping sliding windows.

Both follow mmseg's ``EncoderDecoder``: whole mode runs the model once; slide mode runs it on a grid of
``crop_size`` windows ``stride`` apart (the last row/column of windows pushed back inside the image, windows
shrunk to the image when it is smaller than a crop) and averages the overlapping logits.

:class:`Predictor` is the one way the kit predicts with test settings (evaluation, ``isanet predict``, the
trainer's validation, the benches, the notebooks): a model, its :class:`~isanet.models.zoo.TestSettings`
(checked when they were made) and a precision resolved once, not once per image.

**Memory.** Before anything is allocated, every prediction of an ``ISANet`` is estimated
(:mod:`isanet.models.footprint`: the head, its padding and kernel, every slide window and every multi-scale view)
and refused with one :class:`~isanet.models.footprint.MemoryCapError` line when it would pass the memory cap
(``memory_cap_bytes``, default :data:`~isanet.models.footprint.DEFAULT_CAP_BYTES`; None for no cap).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from isanet.data.transforms import (
    TestTransform,
    normalize,
    rescale_size,
    resize_image,
    scale_factor_size,
)
from isanet.limits import check_side
from isanet.models import footprint
from isanet.models.config import ISANetConfig
from isanet.models.optimize import optimize_for_inference
from isanet.models.zoo import TEST_MODES, TTA_RATIOS, TestSettings, window_grid
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
    rows, cols = window_grid(height, width, crop_size, stride)
    (crop_h, crop_w), (stride_h, stride_w) = crop_size, stride
    windows = []
    for row in range(rows):
        for col in range(cols):
            y2, x2 = min(row * stride_h + crop_h, height), min(col * stride_w + crop_w, width)
            windows.append((max(y2 - crop_h, 0), y2, max(x2 - crop_w, 0), x2))
    return windows


def slide_logits(model: nn.Module, x: torch.Tensor, crop_size: tuple[int, int],
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
                         "picture use image_logits (it resizes and normalises), or normalise it yourself")
    if x.dim() != 4:
        hint = " (one image? add a batch dimension: x[None])" if x.dim() == 3 else ""
        raise ValueError(f"predict expects an N x 3 x H x W batch, got shape {tuple(x.shape)}{hint}")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"predict got an empty batch (shape {tuple(x.shape)}): nothing to predict")
    if x.shape[1] != 3:
        raise ValueError(f"predict expects 3 colour channels (RGB), got shape {tuple(x.shape)}")
    weight = next(model.parameters(), None)
    return x if weight is None else x.to(device=weight.device, dtype=weight.dtype)


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s weights are (the CPU for a model without parameters)."""
    return next(model.parameters(), torch.empty(0)).device


def model_config(model: nn.Module) -> ISANetConfig | None:
    """The architecture of an ``ISANet`` (what the memory estimate reads); None for any other model."""
    config = getattr(model, "config", None)
    return config if isinstance(config, ISANetConfig) else None


@dataclass(frozen=True)
class MemoryCap:
    """A memory cap in bytes (None: no cap) and the name the user sets it by, for the refusal's line."""

    bytes: int | None = footprint.DEFAULT_CAP_BYTES
    option: str = "memory_cap_bytes"

    def check(self, estimate: footprint.Estimate) -> None:
        """Refuse (:class:`~isanet.models.footprint.MemoryCapError`) what ``estimate`` says would pass the cap
        or take too many model calls."""
        estimate.check(self.bytes, self.option)


#: The cap of the Python API: :data:`~isanet.models.footprint.DEFAULT_CAP_BYTES`, named by its argument.
DEFAULT_MEMORY_CAP = MemoryCap()


def _forward(model: nn.Module, x: torch.Tensor, mode: str, crop_size: tuple[int, int] | None,
             stride: tuple[int, int] | None, precision: str, cap: MemoryCap,
             config: ISANetConfig | None) -> torch.Tensor:
    """Whole or slide logits of a checked batch, in eval mode, under the autocast of a resolved precision;
    refused first when ``config``'s estimate of it passes ``cap`` (a model without one is not estimated)."""
    if config is not None:
        cap.check(footprint.logits(config, *x.shape[2:], x.shape[0], mode, crop_size, stride))
    with evaluating(model), autocast(precision, x.device):
        if mode == "whole":
            return full_precision(model(x))
        return slide_logits(model, x, tuple(crop_size), tuple(stride))


def predict(model: nn.Module, x: torch.Tensor, mode: str = "whole", crop_size: tuple[int, int] | None = None,
            stride: tuple[int, int] | None = None, precision: str = "fp32",
            memory_cap_bytes: int | None = footprint.DEFAULT_CAP_BYTES) -> torch.Tensor:
    """Logits (``N x K x H x W``, float32) for a normalised batch ``x``, in eval mode and without gradients.

    ``mode="whole"`` runs the model on the full input; ``mode="slide"`` needs ``crop_size`` and ``stride``
    (a zoo entry's ``test`` settings have both). ``x`` may be a float tensor or NumPy array of any float dtype;
    it is cast to the model's dtype and device (see :func:`as_batch` for what is refused and why). ``precision``
    is ``"fp32"``, ``"bf16"`` (CPUs with native bf16, GPUs) or ``"fp16"`` (GPUs): the model runs under autocast,
    faster only where the hardware's reduced-precision units outrun its fp32 ones (R-50: 2.3x on an AMD EPYC,
    0.7x on an AVX-512 BF16 Xeon without AMX; ``isanet bench model --precision fp32 bf16`` measures yours),
    and an unsupported choice falls back to fp32 with a warning
    (:func:`isanet.runtime.resolve_precision`). An ``ISANet`` whose estimated peak for ``x`` passes
    ``memory_cap_bytes`` (None: no cap) is refused before anything is allocated. This is the loose-argument
    form; for many images with the same settings, make one :class:`Predictor`.
    """
    x = as_batch(model, x)
    if mode not in TEST_MODES:
        raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
    if mode == "slide" and (crop_size is None or stride is None):
        raise ValueError("mode='slide' needs crop_size and stride, e.g. (769, 769) and (513, 513)")
    return _forward(model, x, mode, crop_size, stride, resolve_precision(precision, x.device),
                    MemoryCap(memory_cap_bytes), model_config(model))


class Predictor:
    """A model with its test settings and one resolved precision: logits of a batch, scores and class ids of an
    original picture (single scale or mmseg's multi-scale + flip).

    ``settings`` are checked when they are made (:class:`~isanet.models.zoo.TestSettings`), so nothing is left
    to check per image; ``precision`` is resolved here, once (an unsupported choice warns once and runs fp32).
    ``precision_option`` names the choice in that warning (``"--precision"`` for a command). The model is moved
    to ``device``. ``optimize`` predicts with the compiled copy of
    :func:`isanet.models.optimize.optimize_for_inference` (same logits within 1e-5 in fp32; each new input
    size compiles once, at most a few sizes), made after the precision is resolved so it compiles for the one
    that runs; ``optimize`` is stored as given. ``memory_cap`` bounds every prediction of an ``ISANet`` by its
    estimate, before anything is allocated (:class:`MemoryCap`; its ``option`` names the cap in the refusal).
    """

    def __init__(self, model: nn.Module, settings: TestSettings, precision: str = "fp32",
                 device: str | torch.device = "cpu", optimize: bool = False,
                 precision_option: str = "precision", memory_cap: MemoryCap = DEFAULT_MEMORY_CAP) -> None:
        if not isinstance(settings, TestSettings):
            raise ValueError(f"settings must be TestSettings (a zoo entry's .test), got {type(settings).__name__}")
        for side in settings.scale:
            check_side(side, f"test scale {settings.scale}:")
        self.device = torch.device(device)
        self.settings = settings
        self.precision = resolve_precision(precision, self.device, precision_option)
        self.optimize = optimize
        self.memory_cap = memory_cap
        self.config = model_config(model)  # read before a compiled copy stands in for the model
        self.model = model.to(self.device)
        if optimize:
            self.model = optimize_for_inference(self.model, self.precision, self.device)

    def check_test_scale(self) -> None:
        """Refuse, before any picture is read, settings whose single-scale prediction of a picture that fills the
        test-scale box (either way round) would pass the memory cap: what ``--scale`` is checked by."""
        if self.config is not None:
            long, short = self.settings.scale
            for size in ((short, long), (long, short)):
                estimate = footprint.scores(self.config, self.settings, size, [size])
                self.memory_cap.check(dataclasses.replace(
                    estimate, what=f"test scale {long}x{short}: {estimate.what}"))

    def logits(self, batch) -> torch.Tensor:
        """``N x K x h x w`` float32 logits of a normalised ``N x 3 x h x w`` batch (the batch form), whole or
        slide as the settings say."""
        settings = self.settings
        return _forward(self.model, as_batch(self.model, batch), settings.mode, settings.crop_size,
                        settings.stride, self.precision, self.memory_cap, self.config)

    def _at_size(self, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """mmseg's ``postprocess_result`` resize: ``1 x K x h x w`` logits bilinear to the original ``size`` with
        the settings' ``align_corners``, as ``K x H x W``."""
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=self.settings.align_corners)[0]

    def scores(self, image: np.ndarray, ms_flip: bool = False) -> torch.Tensor:
        """``K x H x W`` scores of an original ``H x W x 3`` uint8 RGB image, at its own size: logits, or with
        ``ms_flip`` the TTA-averaged probabilities.

        Single scale is mmseg's test path: keep-ratio resize into the test ``scale``, normalise, whole/slide
        inference, logits resized back. mmseg 1.2.2's ``tta_pipeline`` has no test-scale resize: each ratio is a
        keep-ratio ``Resize(scale_factor=ratio)`` of the image *as loaded* (mmcv's two-step rounding, see
        :func:`isanet.data.transforms.scale_factor_size`), taken as is and mirrored. Every view is predicted,
        un-mirrored, resized to the original shape, and ``SegTTAModel`` averages their **softmax probabilities**
        (not logits), summed in its order: ratio by ratio, unflipped before flipped.
        """
        settings, size = self.settings, image.shape[:2]
        if self.config is not None:  # every view, every window, before the first is resized
            views = ([scale_factor_size(*size, ratio) for ratio in settings.ratios] if ms_flip
                     else [rescale_size(*size, settings.scale)])
            self.memory_cap.check(footprint.scores(self.config, settings, size, views, ms_flip))
        if not ms_flip:
            pixels = TestTransform(settings.scale, settings.mean, settings.std)(image)  # 3 x h x w
            return self._at_size(self.logits(pixels[None]), size)

        def probabilities(ratio: float, flip: bool) -> torch.Tensor:
            view = resize_image(image, scale_factor_size(*size, ratio))
            logits = self.logits(normalize(view[:, ::-1] if flip else view, settings.mean, settings.std)[None])
            return self._at_size(logits.flip(dims=(3,)) if flip else logits, size).softmax(dim=0)

        views = [(ratio, flip) for ratio in settings.ratios for flip in (False, True)]
        return sum(probabilities(ratio, flip) for ratio, flip in views) / len(views)

    def class_ids(self, image: np.ndarray, ms_flip: bool = False) -> torch.Tensor:
        """``H x W`` int64 class ids (on the CPU) of an original ``H x W x 3`` uint8 RGB image."""
        return self.scores(image, ms_flip).argmax(dim=0).cpu()


# ---- From an original image to scores at its own size, with loose settings: a Predictor made for one call ----

def _one_call(model: nn.Module, scale: tuple[int, int], mean: tuple[float, ...], std: tuple[float, ...],
              mode: str, crop_size: tuple[int, int] | None, stride: tuple[int, int] | None,
              ratios: tuple[float, ...], align_corners: bool | None, precision: str) -> Predictor:
    """A :class:`Predictor` on the model's own device; ``align_corners`` None is the model's own."""
    corners = getattr(model, "align_corners", False) if align_corners is None else align_corners
    settings = TestSettings(mode=mode, scale=scale, mean=mean, std=std, align_corners=corners,
                            crop_size=crop_size, stride=stride, ratios=ratios)
    return Predictor(model, settings, precision, model_device(model))


def image_logits(model: nn.Module, image: np.ndarray, scale: tuple[int, int], mean: tuple[float, ...],
                 std: tuple[float, ...], mode: str = "whole", crop_size: tuple[int, int] | None = None,
                 stride: tuple[int, int] | None = None, align_corners: bool | None = None,
                 precision: str = "fp32") -> torch.Tensor:
    """``K x H x W`` logits for an original ``H x W x 3`` uint8 RGB image, at its own size
    (:meth:`Predictor.scores`)."""
    return _one_call(model, scale, mean, std, mode, crop_size, stride, TTA_RATIOS, align_corners,
                     precision).scores(image)


def ms_flip_probabilities(model: nn.Module, image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...],
                          mode: str = "whole", crop_size: tuple[int, int] | None = None,
                          stride: tuple[int, int] | None = None, ratios: tuple[float, ...] = TTA_RATIOS,
                          align_corners: bool | None = None, precision: str = "fp32") -> torch.Tensor:
    """``K x H x W`` class probabilities for an original image with mmseg 1.x's multi-scale + flip TTA
    (:meth:`Predictor.scores` with ``ms_flip``); its argmax is mmseg's TTA prediction. The TTA has no
    test-scale resize, so the image's own size stands in for the (unused) scale."""
    scale = (max(image.shape[:2]), min(image.shape[:2]))
    return _one_call(model, scale, mean, std, mode, crop_size, stride, ratios, align_corners,
                     precision).scores(image, ms_flip=True)
