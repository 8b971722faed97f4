"""Evaluate a model on a data set the way ``mmseg``'s ``tools/test.py`` does (optionally with ``--tta``).

Every image is predicted from its original pixels (test-scale resize, whole or slide inference, logits back at
the original size, or the multi-scale + flip TTA), its argmax compared with the untouched label, and the
counts accumulated by :class:`~isanet.evaluation.metrics.SegMetrics`, which rounds as ``IoUMetric`` does. The
settings that decide the numbers travel with the result, so a figure is never separated from how it was measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from tqdm import tqdm

from isanet.data.datasets import SegDataset
from isanet.data.transforms import pipeline_step
from isanet.evaluation.inference import TTA_RATIOS, predict_image, predict_ms_flip, slide_windows
from isanet.evaluation.metrics import SegMetrics
from isanet.limits import check_side
from isanet.models.optimize import optimize_for_inference
from isanet.runtime import resolve_precision


@dataclass(frozen=True)
class EvalSettings:
    """What decides the numbers: test mode and windows, test scale, normalisation, resize corners, TTA ratios."""

    mode: str
    scale: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    align_corners: bool
    crop_size: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    ratios: tuple[float, ...] = TTA_RATIOS

    @classmethod
    def from_entry(cls, entry: dict, **overrides) -> EvalSettings:
        """The settings of a zoo entry (``test_cfg``, test/TTA pipelines, data preprocessor), then ``overrides``."""
        test_cfg, preprocessor = entry["test_cfg"], entry["data_preprocessor"]
        tta = pipeline_step(entry["tta_pipeline"], "TestTimeAug")
        ratios = tuple(step["scale_factor"] for step in tta["transforms"][0]) if tta else TTA_RATIOS
        settings = cls(mode=test_cfg["mode"], scale=tuple(pipeline_step(entry["test_pipeline"], "Resize")["scale"]),
                       mean=tuple(preprocessor["mean"]), std=tuple(preprocessor["std"]),
                       align_corners=entry["align_corners"],
                       crop_size=tuple(test_cfg["crop_size"]) if "crop_size" in test_cfg else None,
                       stride=tuple(test_cfg["stride"]) if "stride" in test_cfg else None, ratios=ratios)
        return replace(settings, **overrides)

    def check(self) -> EvalSettings:
        """Refuse settings that cannot give a meaningful number, before any image is predicted."""
        if self.mode not in ("whole", "slide"):
            raise ValueError(f"mode must be 'whole' or 'slide', got {self.mode!r}")
        if self.mode == "slide":
            if self.crop_size is None or self.stride is None:
                raise ValueError("mode 'slide' needs a crop size and stride, and these settings have none (the "
                                 "zoo entry tests whole images): use mode 'whole', or a slide-mode (Cityscapes) "
                                 "entry")
            slide_windows(1, 1, self.crop_size, self.stride)  # refuses a stride larger than the crop
        for side in self.scale:
            check_side(side, f"test scale {tuple(self.scale)}:")
        if not self.ratios or min(self.ratios) <= 0:
            raise ValueError(f"TTA ratios must be positive, got {self.ratios}")
        return self

    def scores(self, model: nn.Module, image, ms_flip: bool, precision: str = "fp32") -> torch.Tensor:
        """``K x H x W`` scores at the image's own size: logits, or TTA-averaged probabilities."""
        windows = dict(mode=self.mode, crop_size=self.crop_size, stride=self.stride, align_corners=self.align_corners,
                       precision=precision)
        if ms_flip:
            return predict_ms_flip(model, image, self.mean, self.std, ratios=self.ratios, **windows)
        return predict_image(model, image, self.scale, self.mean, self.std, **windows)


def _check_classes(model: nn.Module, dataset: SegDataset) -> None:
    model_classes = getattr(model, "num_classes", dataset.num_classes)
    if model_classes != dataset.num_classes:
        raise ValueError(f"the model predicts {model_classes} classes but {type(dataset).__name__} has "
                         f"{dataset.num_classes}: use a model (checkpoint) trained on this data set")


def evaluate(model: nn.Module, dataset: SegDataset, entry_or_settings: dict | EvalSettings, mode: str | None = None,
             ms_flip: bool = False, limit: int | None = None, device: str | torch.device = "cpu",
             progress: bool = True, precision: str = "fp32", optimize: bool = False) -> dict:
    """mIoU, aAcc, mAcc (percent) and per-class IoU/Acc (by class name) of ``model`` on ``dataset``.

    ``entry_or_settings`` is a zoo entry or an :class:`EvalSettings`; ``mode`` ("whole"/"slide") overrides its
    test mode, ``ms_flip`` switches on mmseg's multi-scale + flip TTA, ``limit`` keeps the first images only.
    The model is moved to ``device``; ``precision`` (fp32, bf16, fp16) is the autocast of the forward passes
    (:func:`isanet.evaluation.inference.predict`); ``optimize`` evaluates a copy made by
    :func:`isanet.models.optimize.optimize_for_inference` (same logits within 1e-5 in fp32, faster on CPU).
    The result also holds ``num_images``, the ``settings`` used and the ``confusion`` matrix of pixel counts (a
    list of rows: row = label class, column = predicted class, in ``dataset.CLASSES`` order; see
    :func:`isanet.evaluation.metrics.most_confused`).
    """
    settings = entry_or_settings if isinstance(entry_or_settings, EvalSettings) else \
        EvalSettings.from_entry(entry_or_settings)
    settings = replace(settings, mode=mode or settings.mode).check()
    _check_classes(model, dataset)
    if limit is not None and limit < 1:
        raise ValueError(f"limit {limit}: evaluate at least one image (leave it out for the whole split)")
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if count == 0:
        raise ValueError(f"{type(dataset).__name__} at {getattr(dataset, 'root', '?')} has no images: nothing to "
                         "evaluate")
    model.to(device)
    precision = resolve_precision(precision, device)  # warns once here, not once per image
    if optimize:
        model = optimize_for_inference(model, precision, device)
    metrics = SegMetrics(dataset.num_classes)
    bar = tqdm(range(count), desc=f"eval {type(dataset).__name__}", unit="img", disable=not progress)
    for index in bar:
        sample = dataset[index]
        metrics.update(settings.scores(model, sample["image"], ms_flip, precision).argmax(dim=0).cpu(), sample["label"])
        bar.set_postfix(mIoU=f"{metrics.compute()['mIoU']:.2f}")
    results = metrics.compute()
    names = dataset.CLASSES
    return {"mIoU": results["mIoU"], "aAcc": results["aAcc"], "mAcc": results["mAcc"],
            "IoU": dict(zip(names, results["IoU"])), "Acc": dict(zip(names, results["Acc"])), "num_images": count,
            "confusion": metrics.confusion.tolist(),
            "settings": {**asdict(settings), "ms_flip": ms_flip, "limit": limit, "device": str(device),
                         "precision": precision, "optimize": optimize}}
