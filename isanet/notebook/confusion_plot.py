"""The confusion matrix as a picture: where each class's pixels went, as mmseg's ``confusion_matrix.py`` shows it.

Rows are the labelled class, columns the predicted class, each row normalised to percent of that class's
labelled pixels, so the diagonal is the per-class accuracy and a bright off-diagonal cell names a confusion.
Like :mod:`isanet.notebook.plots`, it returns a ``Figure`` without pyplot state (CLI and notebooks alike).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from isanet.evaluation.metrics import row_normalised
from isanet.notebook.plots import axes_grid, save_figure

ANNOTATE_UP_TO = 25  # classes; beyond this the numbers in the cells would be unreadable


def plot_confusion(confusion: np.ndarray | Sequence[Sequence[int]], class_names: Sequence[str], title: str = "",
                   path: str | os.PathLike | None = None, ax: Axes | None = None) -> Figure:
    """The row-normalised matrix (percent) with the class names on both axes; cells annotated up to
    :data:`ANNOTATE_UP_TO` classes, rows of classes absent from the labels left blank. Saved to ``path`` if given."""
    shares = row_normalised(confusion) * 100
    count = len(class_names)
    if shares.shape != (count, count):
        raise ValueError(f"confusion matrix is {shares.shape[0]}x{shares.shape[1]} but there are {count} class names")
    figure, (ax,) = axes_grid(ax, size=min(4 + 0.35 * count, 24))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=100)
    figure.colorbar(image, ax=ax, shrink=0.8, label="% of the label's pixels")
    font = max(4, min(9, 200 // count))
    ax.set_xticks(range(count), class_names, rotation=90, fontsize=font)
    ax.set_yticks(range(count), class_names, fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("labelled class")
    ax.set_title(title or "confusion matrix (rows sum to 100%)")
    if count <= ANNOTATE_UP_TO:
        for (row, column), value in np.ndenumerate(shares):
            if not np.isnan(value):
                ax.text(column, row, f"{value:.0f}", ha="center", va="center", fontsize=font,
                        color="white" if value > 50 else "black")
    if path is not None:
        save_figure(figure, path, dpi=120)
    return figure
