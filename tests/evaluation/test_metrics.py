"""SegMetrics against confusion matrices computed by hand (ignore pixels, absent classes, mmseg's rounding)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from isanet.evaluation.metrics import SegMetrics, format_table

# 3 classes; 255 = ignore. Hand count of (label, pred) over the 10 non-ignored pixels:
#   label 0: pred 0 x3, pred 1 x1       label 1: pred 1 x2, pred 2 x1       label 2: pred 2 x2, pred 0 x1
LABEL = np.array([[0, 0, 0, 0, 1, 1], [1, 2, 2, 2, 255, 255]])
PRED = np.array([[0, 0, 0, 1, 1, 1], [2, 2, 2, 0, 0, 1]])


def test_hand_computed_confusion_matrix():
    metrics = SegMetrics(3)
    metrics.update(PRED, LABEL)
    assert metrics.confusion.tolist() == [[3, 1, 0], [0, 2, 1], [1, 0, 2]]
    results = metrics.compute()
    # IoU = TP / (TP + FP + FN): 3/5, 2/4, 2/4; Acc = TP / label area: 3/4, 2/3, 2/3; aAcc = 7/10
    assert results["IoU"] == [60.0, 50.0, 50.0]
    assert results["Acc"] == [75.0, 66.67, 66.67]
    assert results["aAcc"] == 70.0 and results["mIoU"] == 53.33 and results["mAcc"] == 69.44


def test_absent_classes_are_nan_and_left_out_of_the_means():
    metrics = SegMetrics(4)
    metrics.update(np.array([[0, 0, 2, 2]]), np.array([[0, 0, 0, 255]]))
    results = metrics.compute()
    # class 1 is in neither prediction nor label; class 2 is predicted but never labelled; class 3 is absent
    assert results["IoU"][0] == pytest.approx(66.67) and results["IoU"][2] == 0.0
    assert math.isnan(results["IoU"][1]) and math.isnan(results["IoU"][3])
    assert results["Acc"][0] == 66.67 and all(math.isnan(v) for v in results["Acc"][1:])
    assert results["mIoU"] == 33.33 and results["mAcc"] == 66.67 and results["aAcc"] == 66.67


def test_everything_ignored_gives_nan_without_warnings(recwarn):
    metrics = SegMetrics(2)
    metrics.update(np.zeros((2, 2), int), np.full((2, 2), 255))
    results = metrics.compute()
    assert all(math.isnan(results[key]) for key in ("aAcc", "mIoU", "mAcc")) and not recwarn.list


def test_batched_torch_and_numpy_inputs_agree():
    single = SegMetrics(3)
    for _ in range(2):
        single.update(PRED, LABEL)
    batched = SegMetrics(3)
    labels = torch.from_numpy(np.stack([LABEL, LABEL]).astype(np.uint8))
    batched.update(torch.from_numpy(np.stack([PRED, PRED])), labels)
    assert np.array_equal(single.confusion, batched.confusion) and single.compute() == batched.compute()
    assert single.confusion.sum() == 20


def test_reset_forgets_and_the_areas_are_per_image_float32_sums():
    metrics = SegMetrics(3)
    metrics.update(PRED, LABEL)
    assert metrics.areas.dtype == torch.float32
    assert metrics.areas.tolist() == [[3, 2, 2], [5, 4, 4], [4, 3, 3], [4, 3, 3]]  # intersect, union, pred, label
    metrics.reset()
    assert metrics.confusion.sum() == 0 and metrics.areas.sum() == 0


def test_rounding_is_numpy_rounding_of_float32_percentages():
    metrics = SegMetrics(2)
    # class 0: 1 of 3 right; class 1: 2 of 2 right -> IoU 1/3 and 2/4
    metrics.update(np.array([[0, 1, 1, 1, 1]]), np.array([[0, 0, 0, 1, 1]]))
    results = metrics.compute()
    assert results["IoU"] == [33.33, 50.0] and results["mIoU"] == 41.67 and results["Acc"] == [33.33, 100.0]
    assert results["aAcc"] == 60.0 and results["mAcc"] == 66.67


def test_bad_inputs_are_refused():
    metrics = SegMetrics(3)
    with pytest.raises(ValueError, match="same shape"):
        metrics.update(np.zeros((2, 3), int), np.zeros((3, 2), int))
    with pytest.raises(ValueError, match="argmax"):
        metrics.update(np.zeros((2, 3)), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match=r"label has values outside 0\.\.2.*\[7\]"):
        metrics.update(np.zeros((1, 2), int), np.array([[7, 255]]))
    with pytest.raises(ValueError, match=r"pred has values outside"):
        metrics.update(np.array([[3, 0]]), np.zeros((1, 2), int))
    with pytest.raises(ValueError, match="positive"):
        SegMetrics(0)


def test_format_table_lists_every_class():
    metrics = SegMetrics(4)
    metrics.update(np.array([[0, 0, 2, 2]]), np.array([[0, 0, 0, 255]]))
    table = format_table(metrics.compute(), ["road", "sky", "car", "traffic light"])
    lines = table.splitlines()
    assert len(lines) == 4 + 4 and lines[1].split() == ["|", "Class", "|", "IoU", "|", "Acc", "|"]
    assert "| road          | 66.67 | 66.67 |" in lines and "| sky           |   nan |   nan |" in lines
