"""Evaluate a model on a data set the way ``mmseg``'s ``tools/test.py`` does (optionally with ``--tta``).

Every image is predicted from its original pixels (test-scale resize, whole or slide inference, logits back at
the original size, or the multi-scale + flip TTA), its argmax compared with the untouched label, and the
counts accumulated by :class:`~isanet.evaluation.metrics.SegMetrics`, which rounds as ``IoUMetric`` does. The
settings that decide the numbers travel with the result, so a figure is never separated from how it was measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import torch
from torch import nn
from tqdm import tqdm

from isanet.data.datasets import SegDataset
from isanet.evaluation.inference import Predictor
from isanet.evaluation.metrics import SegMetrics
from isanet.models.zoo import TestSettings, ZooEntry


def _check_classes(model: nn.Module, dataset: SegDataset) -> None:
    model_classes = getattr(model, "num_classes", dataset.num_classes)
    if model_classes != dataset.num_classes:
        raise ValueError(f"the model predicts {model_classes} classes but {type(dataset).__name__} has "
                         f"{dataset.num_classes}: use a model (checkpoint) trained on this data set")


def evaluate(model: nn.Module, dataset: SegDataset, entry_or_settings: ZooEntry | TestSettings,
             mode: str | None = None, ms_flip: bool = False, limit: int | None = None,
             device: str | torch.device = "cpu", progress: bool = True, precision: str = "fp32",
             optimize: bool = False) -> dict:
    """mIoU, aAcc, mAcc (percent) and per-class IoU/Acc (by class name) of ``model`` on ``dataset``.

    ``entry_or_settings`` is a zoo entry (its ``test`` settings are used) or :class:`TestSettings`; ``mode``
    ("whole"/"slide") overrides its test mode. ``device``, ``precision`` (fp32, bf16, fp16: the autocast of the
    forward passes) and ``optimize`` make the :class:`~isanet.evaluation.inference.Predictor`; see
    :func:`evaluate_predictor` for the rest.
    """
    settings = entry_or_settings.test if isinstance(entry_or_settings, ZooEntry) else entry_or_settings
    settings = settings.override(mode)  # checked again: slide needs windows
    return evaluate_predictor(Predictor(model, settings, precision, device, optimize), dataset, ms_flip, limit,
                              progress)


def evaluate_predictor(predictor: Predictor, dataset: SegDataset, ms_flip: bool = False, limit: int | None = None,
                       progress: bool = True,
                       on_prediction: Callable[[torch.Tensor], None] | None = None) -> dict:
    """The evaluation loop: every image (the first ``limit`` only, when given) predicted by ``predictor``
    (``ms_flip``: mmseg's multi-scale + flip TTA) and its class ids, also handed to ``on_prediction`` when given,
    counted against the label.

    The result also holds ``num_images``, the ``settings`` used and the ``confusion`` matrix of pixel counts (a
    list of rows: row = label class, column = predicted class, in ``dataset.CLASSES`` order; see
    :func:`isanet.evaluation.metrics.most_confused`).
    """
    _check_classes(predictor.model, dataset)
    if limit is not None and limit < 1:
        raise ValueError(f"limit {limit}: evaluate at least one image (leave it out for the whole split)")
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if count == 0:
        raise ValueError(f"{type(dataset).__name__} at {getattr(dataset, 'root', '?')} has no images: nothing to "
                         "evaluate")
    metrics = SegMetrics(dataset.num_classes)
    bar = tqdm(range(count), desc=f"eval {type(dataset).__name__}", unit="img", disable=not progress)
    for index in bar:
        sample = dataset[index]
        prediction = predictor.class_ids(sample["image"], ms_flip)
        if on_prediction is not None:
            on_prediction(prediction)
        metrics.update(prediction, sample["label"])
        bar.set_postfix(mIoU=f"{metrics.compute()['mIoU']:.2f}")
    results = metrics.compute()
    names = dataset.CLASSES
    return {"mIoU": results["mIoU"], "aAcc": results["aAcc"], "mAcc": results["mAcc"],
            "IoU": dict(zip(names, results["IoU"])), "Acc": dict(zip(names, results["Acc"])), "num_images": count,
            "confusion": metrics.confusion.tolist(),
            "settings": {**asdict(predictor.settings), "ms_flip": ms_flip, "limit": limit,
                         "device": str(predictor.device), "precision": predictor.precision,
                         "optimize": predictor.optimize}}
