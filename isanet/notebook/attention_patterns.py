"""Pictures of the efficient attentions' patterns for notebook 06: which pixels one query has read from after
one and two layers of each method, the reach table, the affinity count as the map grows, and sliders to move
the query.

They draw what :mod:`isanet.analysis.reach` computes from the modules' own ``pattern`` methods, so a picture
can never disagree with what the modules compute (``tests/models/test_efficient_attention.py`` checks that
each module *is* its pattern).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

import anywidget
import numpy as np
import traitlets
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from isanet.analysis.reach import ReachRow, reached_map
from isanet.models.efficient.registry import METHODS, build_attention
from isanet.notebook.explorer_html import TEMPLATES
from isanet.notebook.explorer_pages import PATTERN_MODULE, pattern_payload, save_pattern_page
from isanet.notebook.plots import mark_pixel

_REACHED = ListedColormap(["#f2f2f2", "#2b7bba"])


def _draw_reach(ax: Axes, reached: np.ndarray, pixel: tuple[int, int], size: int, title: str) -> None:
    height, width = reached.shape
    ax.imshow(reached, cmap=_REACHED, vmin=0, vmax=1, interpolation="nearest")
    for edge in range(size, height, size):  # the size x size grid: windows, blocks, lattice period
        ax.axhline(edge - 0.5, color="black", lw=0.4, alpha=0.4)
    for edge in range(size, width, size):
        ax.axvline(edge - 0.5, color="black", lw=0.4, alpha=0.4)
    mark_pixel(ax, *pixel)
    ax.set_title(f"{title}\n{int(reached.sum())} px ({reached.mean():.0%})", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_reach(height: int, width: int, pixel: tuple[int, int], size: int = 8,
               methods: Sequence[str] = tuple(METHODS), layers: Sequence[int] = (1, 2),
               figure: Figure | None = None) -> Figure:
    """One panel per method (columns) and number of stacked layers (rows): in blue the pixels the query
    ``pixel`` (star) has read from. Thin lines mark the ``size x size`` grid (windows, ISA blocks)."""
    figure = figure or Figure(figsize=(2.3 * len(methods), 2.2 * len(layers) + 0.4), layout="constrained")
    axes = np.asarray(figure.subplots(len(layers), len(methods), squeeze=False))
    for row, count in enumerate(layers):
        for col, method in enumerate(methods):
            reached = reached_map(method, height, width, pixel, size, count).numpy()
            _draw_reach(axes[row, col], reached, pixel, size,
                        f"{METHODS[method].label}, {count} layer{'s' if count > 1 else ''}")
    return figure


def plot_hops(method: str, height: int, width: int, pixel: tuple[int, int], size: int = 8,
              figure: Figure | None = None) -> Figure:
    """The hops inside one layer of ``method`` (two for ISA and axial), each as the keys ``pixel`` reads in
    that hop, over the map the hop works on (ISA: the padded map; its dashed box is the real map)."""
    module = build_attention(method, 2, 1, size=size)
    left, right, top, bottom = module.padding(height, width)
    padded_h, padded_w = top + height + bottom, left + width + right
    hops = module.hop_masks(height, width)
    figure = figure or Figure(figsize=(2.6 * len(hops), 2.8), layout="constrained")
    axes = np.asarray(figure.subplots(1, len(hops), squeeze=False))[0]
    index = (pixel[0] + top) * padded_w + pixel[1] + left
    for number, (ax, hop) in enumerate(zip(axes, hops, strict=True), start=1):
        reached = hop[index].reshape(padded_h, padded_w).numpy()  # padded HW -> padded H x W
        _draw_reach(ax, reached, (pixel[0] + top, pixel[1] + left), size, f"{METHODS[method].label}: hop {number}")
        if (left, right, top, bottom) != (0, 0, 0, 0):
            ax.add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False, lw=1.5, ls="--"))
    return figure


def reach_html(rows: Sequence[ReachRow]) -> str:
    """The reach table as HTML: hops per layer, reach after 1 and 2 layers (mean over pixels, worst pixel in
    brackets) and affinity entries of one layer (per image, and as a share of dense)."""
    header = ("method", "hops / layer", "reach, 1 layer", "reach, 2 layers", "affinity entries / layer",
              "vs dense")
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in (
            METHODS[row.method].label, row.hops_per_layer, f"{row.reach_1:.1%} (min {row.reach_1_min:.1%})",
            f"{row.reach_2:.1%} (min {row.reach_2_min:.1%})", f"{row.affinity_entries:,}",
            f"{row.affinity_vs_dense:.1%}")) + "</tr>" for row in rows)
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    return f"<table class='isanet-reach'><tr>{head}</tr>{body}</table>"


def plot_affinity_growth(sides: Sequence[int], size: int = 8, methods: Sequence[str] = tuple(METHODS),
                         ax: Axes | None = None) -> Figure:
    """Affinity entries one layer computes on an ``n x n`` map, against ``n`` (log-log), from each module's
    ``affinity_entries`` formula."""
    if ax is None:
        figure = Figure(figsize=(6.5, 4.2), layout="constrained")
        ax = figure.subplots()
    for method in methods:
        module = build_attention(method, 2, 1, size=size)
        ax.loglog(sides, [module.affinity_entries(n, n) for n in sides], "o-", ms=3, label=METHODS[method].label)
    ax.set_xlabel("map side n (n x n)")
    ax.set_ylabel("affinity entries per layer")
    ax.set_title(f"what one layer computes (size {size})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax.figure


class ReachExplorer(anywidget.AnyWidget):
    """The pattern explorer widget: the query pixel (``pixel``, ``[row, col]``) and ``size`` are its synced state,
    set by a click, the arrow keys and the size slider of its view (``templates/patterns.mjs``, the same module the
    standalone page runs) or from Python. The view draws from the payload: every method's reach after one and two
    layers for every size from 2 to ``max_size`` (:func:`isanet.notebook.explorer_pages.pattern_payload`)."""

    _esm = TEMPLATES / PATTERN_MODULE
    payload = traitlets.Dict().tag(sync=True)  # the stored reach matrices (never changes)
    pixel = traitlets.List(traitlets.Int(), minlen=2, maxlen=2).tag(sync=True)
    size = traitlets.Int().tag(sync=True)

    def __init__(self, height: int = 20, width: int = 28, pixel: tuple[int, int] = (5, 9), size: int = 4,
                 methods: Sequence[str] = tuple(METHODS), max_size: int = 8):
        payload = pattern_payload(height, width, pixel, size, methods, range(2, max_size + 1))
        super().__init__(payload=payload, pixel=list(pixel), size=size)

    @traitlets.validate("pixel")
    def _inside(self, proposal) -> list[int]:
        row, col = proposal["value"]
        return [min(max(int(row), 0), self.payload["height"] - 1), min(max(int(col), 0), self.payload["width"] - 1)]

    @traitlets.validate("size")
    def _known_size(self, proposal) -> int:
        if proposal["value"] not in self.payload["sizes"]:
            raise traitlets.TraitError(f"size must be one of {self.payload['sizes']}, got {proposal['value']}")
        return proposal["value"]

    def save_html(self, path: str | os.PathLike) -> int:
        """Write the explorer, in its current state, as one standalone page that answers clicks and its ``size``
        slider without a kernel (the same view, :mod:`isanet.notebook.explorer_pages`); returns the file's size in
        bytes."""
        payload = self.payload
        return save_pattern_page(path, height=payload["height"], width=payload["width"], pixel=tuple(self.pixel),
                                 size=self.size, methods=payload["methods"], sizes=payload["sizes"])
