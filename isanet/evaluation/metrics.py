"""Segmentation metrics that give mmseg 1.2.2's ``IoUMetric`` numbers to the last printed digit.

mmseg counts, per image, the intersection, union, predicted and labelled pixels of every class
(``torch.histc``, float32), sums those per-image float32 vectors over the data set in order, and divides in
float32; ``aAcc``/``mIoU``/``mAcc`` are ``np.round(np.nanmean(v) * 100, 2)`` and per-class values
``np.round(v * 100, 2)``. A class with no union (absent from both prediction and label) has IoU NaN and is
left out of the mean; a class absent from the labels has Acc NaN. We keep an exact int64 confusion matrix
(for analysis) and the same float32 running sums (for bit-identical rounding on large data sets, where
float32 sums of pixel counts beyond 2**24 are no longer exact).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from isanet.data.datasets import IGNORE_INDEX
from isanet.text_table import text_table


def _as_numpy(array) -> np.ndarray:
    return array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)


class SegMetrics:
    """Accumulates ``update(pred, label)`` calls; ``compute()`` returns the metrics in percent."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)  # rows: label, cols: pred
        self.areas = torch.zeros(4, self.num_classes, dtype=torch.float32)  # intersect, union, pred, label

    def update(self, pred, label) -> None:
        """Add predictions and labels: ``H x W`` or a batch ``N x H x W`` (numpy or torch, integer class ids).

        Each image of a batch is counted on its own, as mmseg does. Pixels labelled ``ignore_index`` are
        skipped; any other label or prediction outside ``0..num_classes-1`` is an error.
        """
        pred, label = _as_numpy(pred), _as_numpy(label)
        if pred.shape != label.shape or pred.ndim not in (2, 3):
            raise ValueError(f"pred and label must both be H x W or N x H x W with the same shape, got "
                             f"{pred.shape} and {label.shape}")
        if not np.issubdtype(pred.dtype, np.integer):
            raise ValueError(f"pred must hold integer class ids (take the argmax of logits), got {pred.dtype}")
        # ... x H x W -> N x H x W: one label map at a time, as mmseg's IoUMetric counts them
        for one_pred, one_label in zip(pred.reshape(-1, *pred.shape[-2:]), label.reshape(-1, *label.shape[-2:])):
            self._add(one_pred.astype(np.int64), one_label.astype(np.int64))

    def _add(self, pred: np.ndarray, label: np.ndarray) -> None:
        keep = label != self.ignore_index
        pred, label = pred[keep], label[keep]
        for name, values in (("pred", pred), ("label", label)):
            outside = (values < 0) | (values >= self.num_classes)
            if outside.any():
                raise ValueError(f"{name} has values outside 0..{self.num_classes - 1} (and {self.ignore_index} "
                                 f"= ignore in labels): {np.unique(values[outside])}")
        counts = np.bincount(label * self.num_classes + pred, minlength=self.num_classes ** 2)
        confusion = counts.reshape(self.num_classes, self.num_classes)  # K*K -> K x K [label, prediction]
        self.confusion += confusion
        intersect, pred_area, label_area = np.diag(confusion), confusion.sum(0), confusion.sum(1)
        image_areas = np.stack([intersect, pred_area + label_area - intersect, pred_area, label_area])
        self.areas += torch.from_numpy(image_areas.astype(np.float32))

    def compute(self) -> dict:
        """``aAcc``, ``mIoU``, ``mAcc`` (percent, 2 decimals) and per-class ``IoU``/``Acc`` lists (NaN where
        undefined), computed exactly as ``IoUMetric.compute_metrics``."""
        intersect, union, _, label_area = self.areas
        per_class = {"IoU": (intersect / union).numpy(), "Acc": (intersect / label_area).numpy()}
        summary = {"aAcc": (intersect.sum() / label_area.sum()).numpy(), **per_class}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN (nothing seen yet) is NaN
            means = {key: np.round(np.nanmean(value) * 100, 2) for key, value in summary.items()}
        results = {"aAcc": _percent(means["aAcc"]), "mIoU": _percent(means["IoU"]), "mAcc": _percent(means["Acc"])}
        results.update({key: [_percent(v) for v in np.round(value * 100, 2)] for key, value in per_class.items()})
        return results


def _percent(value: np.floating) -> float:
    """A float32 percentage rounded by numpy, as the Python float it prints as (78.49, not 78.4899978...)."""
    return float(value) if math.isnan(value) else round(float(value), 2)


def format_table(results: dict, class_names: list[str] | tuple[str, ...]) -> str:
    """Per-class IoU and Acc as an aligned text table, like the one mmseg logs."""
    rows = [("Class", "IoU", "Acc")] + [(name, f"{iou:.2f}", f"{acc:.2f}")
                                        for name, iou, acc in zip(class_names, results["IoU"], results["Acc"])]
    return text_table(rows, boxed=True)


def row_normalised(confusion: np.ndarray) -> np.ndarray:
    """Each row of a confusion matrix (rows: label, columns: prediction) divided by its sum: row ``i`` is where
    the pixels of class ``i`` went, so the diagonal is the per-class Acc. Rows of absent classes are NaN."""
    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, confusion / totals, np.nan)


def most_confused(confusion: np.ndarray, class_names: list[str] | tuple[str, ...], top: int = 5) -> list[dict]:
    """The ``top`` off-diagonal cells with the most pixels: ``{"label", "predicted", "pixels", "share"}``, where
    ``share`` is the percent of that label's pixels predicted as the other class. Largest first; ties in index
    order; cells with no pixels are left out."""
    confusion = np.asarray(confusion)
    shares = row_normalised(confusion)
    cells = [(int(confusion[i, j]), i, j) for i in range(len(confusion)) for j in range(len(confusion))
             if i != j and confusion[i, j] > 0]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [{"label": class_names[i], "predicted": class_names[j], "pixels": pixels,
             "share": round(float(shares[i, j]) * 100, 2)} for pixels, i, j in cells[:top]]


def format_confused(pairs: list[dict]) -> str:
    """The most-confused pairs as lines: ``label -> predicted: pixels (share of the label's pixels)``."""
    if not pairs:
        return "most confused: none (every labelled pixel was predicted as its own class)"
    width = max(len(pair["label"]) for pair in pairs)
    return "\n".join(["most confused (label -> predicted):"] + [
        f"  {pair['label']:>{width}} -> {pair['predicted']}: {pair['pixels']} px ({pair['share']:.2f}% of "
        f"{pair['label']})" for pair in pairs])
