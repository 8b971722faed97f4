"""The confusion matrix exposed: row-normalised shares and the most-confused pairs, on matrices counted by hand."""

from __future__ import annotations

import math

import numpy as np

from isanet.evaluation.metrics import SegMetrics, format_confused, most_confused, row_normalised

# 3 classes; 255 = ignore. By hand, (label, pred) over the 10 labelled pixels:
#   label 0: pred 0 x3, pred 1 x1       label 1: pred 1 x2, pred 2 x1       label 2: pred 2 x2, pred 0 x1
LABEL = np.array([[0, 0, 0, 0, 1, 1], [1, 2, 2, 2, 255, 255]])
PRED = np.array([[0, 0, 0, 1, 1, 1], [2, 2, 2, 0, 0, 1]])
NAMES = ("road", "car", "person")


def hand_metrics() -> SegMetrics:
    metrics = SegMetrics(3)
    metrics.update(PRED, LABEL)
    return metrics


def test_row_normalised_shares_sum_to_one_and_the_diagonal_is_acc():
    shares = row_normalised(hand_metrics().confusion)
    np.testing.assert_allclose(shares, [[3 / 4, 1 / 4, 0], [0, 2 / 3, 1 / 3], [1 / 3, 0, 2 / 3]])
    acc = hand_metrics().compute()["Acc"]
    assert [round(v * 100, 2) for v in np.diag(shares)] == acc == [75.0, 66.67, 66.67]


def test_a_class_absent_from_the_labels_has_a_nan_row():
    shares = row_normalised(np.array([[2, 0], [0, 0]]))
    assert shares[0].tolist() == [1.0, 0.0] and all(math.isnan(v) for v in shares[1])


def test_most_confused_pairs_by_pixels_then_index():
    pairs = most_confused(hand_metrics().confusion, NAMES)
    # three off-diagonal cells of one pixel each: ties in (label, prediction) index order
    assert pairs == [{"label": "road", "predicted": "car", "pixels": 1, "share": 25.0},
                     {"label": "car", "predicted": "person", "pixels": 1, "share": 33.33},
                     {"label": "person", "predicted": "road", "pixels": 1, "share": 33.33}]
    weighted = most_confused(np.array([[5, 0, 9], [4, 1, 0], [0, 0, 0]]), NAMES, top=1)
    assert weighted == [{"label": "road", "predicted": "person", "pixels": 9, "share": 64.29}]


def test_format_confused_lines():
    text = format_confused(most_confused(np.array([[5, 0, 9], [4, 1, 0], [0, 0, 3]]), NAMES))
    assert text.splitlines() == ["most confused (label -> predicted):",
                                 "  road -> person: 9 px (64.29% of road)",
                                 "   car -> road: 4 px (80.00% of car)"]
    assert format_confused(most_confused(np.eye(3, dtype=int), NAMES)).startswith("most confused: none")
