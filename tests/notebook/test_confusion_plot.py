"""The confusion-matrix picture: row-normalised cells, class names on both axes, written atomically."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from isanet.io.outputs import LEDGER
from isanet.notebook.confusion_plot import plot_confusion

NAMES = ["road", "car", "person"]
CONFUSION = [[3, 1, 0], [0, 2, 1], [0, 0, 0]]


def test_cells_are_row_percentages_with_names_on_the_axes(tmp_path):
    figure = plot_confusion(CONFUSION, NAMES, path=tmp_path / "cm.png")
    ax = figure.axes[0]
    shown = ax.images[0].get_array()
    np.testing.assert_allclose(shown[:2], [[75, 25, 0], [0, 200 / 3, 100 / 3]])
    assert np.ma.getmaskarray(shown)[2].all() and not np.ma.getmaskarray(shown)[:2].any()  # person: blank row
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES == [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(t.get_text() for t in ax.texts) == sorted(["75", "25", "0", "0", "67", "33"])
    with Image.open(tmp_path / "cm.png") as image:
        assert image.format == "PNG" and min(image.size) > 100
    assert sorted(path.name for path in tmp_path.iterdir() if path.name != LEDGER) == ["cm.png"]


def test_size_mismatch_is_one_line():
    with pytest.raises(ValueError, match="confusion matrix is 3x3 but there are 2 class names"):
        plot_confusion(CONFUSION, NAMES[:2])
