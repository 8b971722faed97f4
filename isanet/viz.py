"""Plotting: ISA partition grids, attention maps over an image, and the dense-vs-ISA benchmark plot.

Plotting functions only, with no pyplot state: each takes an optional ``matplotlib`` ``Axes`` (to compose
into a notebook figure) or makes its own ``Figure`` and returns it, so the same code serves notebooks, the
CLI (``isanet bench attention --plot``) and tests on a machine without a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullFormatter, ScalarFormatter

from isanet.isa import Partition, long_range_group_ids, short_range_group_ids

#: mmseg's ImageNet normalisation (RGB order), used by every published ISANet config.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def _axes(ax: Axes | None, ncols: int = 1, size: float = 4.0) -> tuple[Figure, list[Axes]]:
    if ax is not None:
        return ax.figure, [ax]
    figure = Figure(figsize=(size * ncols, size), layout="constrained")
    return figure, list(np.atleast_1d(figure.subplots(1, ncols)))


def to_display_image(image: torch.Tensor | np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """A normalised ``[1 x] 3 x H x W`` tensor back to an ``H x W x 3`` uint8 picture; arrays that are
    already ``H x W x 3`` pass through."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 4:
        array = array[0]
    if array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0) * np.asarray(std) + np.asarray(mean)
    return np.clip(array, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------- partitions

def _outline_padding(ax: Axes, p: Partition) -> None:
    ax.add_patch(Rectangle((p.pad_left - 0.5, p.pad_top - 0.5), p.width, p.height, fill=False, lw=2,
                           ec="black", ls="--"))


def _mark(ax: Axes, y: int, x: int) -> None:
    ax.plot([x], [y], marker="*", ms=14, mec="black", mfc="white")


def plot_partition(partition: Partition, pixel: tuple[int, int] | None = None,
                   axes: Sequence[Axes] | None = None) -> Figure:
    """Two panels on the padded map: the long-range groups (colour = in-block offset; one group is all the
    cells of one colour, a stride-``loc`` lattice) and the short-range blocks. The dashed box is the
    unpadded map; with ``pixel`` (unpadded feature coordinates) its two groups are highlighted."""
    figure, axes = (axes[0].figure, list(axes)) if axes is not None else _axes(None, 2)
    p = partition
    long_ids, short_ids = long_range_group_ids(p).numpy(), short_range_group_ids(p).numpy()
    y, x = (pixel[0] + p.pad_top, pixel[1] + p.pad_left) if pixel is not None else (None, None)
    for ax, ids, count, title in ((axes[0], long_ids, p.num_long_range_groups, "long-range groups"),
                                  (axes[1], short_ids, p.num_short_range_groups, "short-range blocks")):
        colours = ListedColormap(np.random.default_rng(0).uniform(0.35, 0.95, size=(count, 3)))
        shown = ids.astype(float)
        if pixel is not None:  # dim everything but the pixel's group
            ax.imshow(np.where(ids == ids[y, x], 1.0, 0.0), cmap="Greys", vmin=0, vmax=1.6,
                      interpolation="nearest")
            shown = np.ma.masked_where(ids != ids[y, x], shown)
        ax.imshow(shown, cmap=colours, vmin=-0.5, vmax=count - 0.5, interpolation="nearest")
        for edge in range(0, p.padded_h + 1, p.loc_h):
            ax.axhline(edge - 0.5, color="black", lw=0.8)
        for edge in range(0, p.padded_w + 1, p.loc_w):
            ax.axvline(edge - 0.5, color="black", lw=0.8)
        _outline_padding(ax, p)
        if pixel is not None:
            _mark(ax, y, x)
        ax.set_title(f"{title} ({count})")
        ax.set_xticks([])
        ax.set_yticks([])
    return figure


# ---------------------------------------------------------------------------------------------- attention

def overlay_attention(ax: Axes, attention: np.ndarray, image: np.ndarray | torch.Tensor | None = None,
                      pixel: tuple[float, float] | None = None, title: str | None = None,
                      alpha: float = 0.6, cmap: str = "inferno") -> Axes:
    """Draw an attention map (``H x W``) over an image (``H x W x 3`` or a normalised tensor) on ``ax``;
    ``pixel`` (the query, in the map's coordinates) is marked with a star."""
    if image is not None:
        ax.imshow(to_display_image(image))
    ax.imshow(attention, cmap=cmap, alpha=alpha if image is not None else 1.0, interpolation="nearest")
    if pixel is not None:
        _mark(ax, *pixel)
    if title:
        ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_pixel_attention(result, image: np.ndarray | torch.Tensor | None = None,
                         resolution: str = "image") -> Figure:
    """One panel per map of an :class:`isanet.probe.PixelAttention` (long range, short range, composed,
    dense; those present), at ``"image"`` or ``"feature"`` resolution, over ``image`` when given."""
    names = [name for name in ("long_range", "short_range", "composed", "dense") if getattr(result, name)]
    figure, axes = _axes(None, len(names))
    at_image = resolution == "image"
    pixel = result.image_pixel if at_image else result.pixel
    for ax, name in zip(axes, names):
        attention_map = getattr(result, name)
        values = attention_map.image if at_image else attention_map.feature
        title = name.replace("_", " ")
        if attention_map.padding_mass > 1e-4:
            title += f" ({attention_map.padding_mass:.0%} on padding)"
        overlay_attention(ax, values, image if at_image else None, pixel, title)
    return figure


# ---------------------------------------------------------------------------------------------- benchmark

def plot_bench(rows: Sequence, path: str | Path | None = None) -> Figure:
    """Peak memory and time against feature size (log-log), one line per method and kernel, from
    :class:`isanet.profiling.BenchRow` objects or their dicts (the ``--json`` rows). Rows that ran out of
    memory are left off the lines and marked with an ``x`` on the size axis. Saved to ``path`` if given."""
    rows = [row if isinstance(row, dict) else row.to_dict() for row in rows]
    figure, (ax_mem, ax_time) = _axes(None, 2, size=4.5)
    series = sorted({(row["method"], row["kernel"]) for row in rows})
    for method, kernel in series:
        mine = sorted((r for r in rows if (r["method"], r["kernel"]) == (method, kernel)),
                      key=lambda r: r["height"] * r["width"])
        style = dict(marker="o", ls="-" if method == "isa" else "--", label=f"{method} ({kernel})")
        for ax, key, scale in ((ax_mem, "peak_memory_bytes", 2**-20), (ax_time, "time_ms", 1.0)):
            ok = [r for r in mine if r["status"] == "ok" and r[key]]
            line, = ax.plot([(r["height"] * r["width"]) ** 0.5 for r in ok], [r[key] * scale for r in ok],
                            **style)
            oom = [(r["height"] * r["width"]) ** 0.5 for r in mine if r["status"] != "ok"]
            if oom:
                ax.plot(oom, [ax.get_ylim()[1]] * len(oom), "x", color=line.get_color(), ms=10)
    sides = sorted({(r["height"] * r["width"]) ** 0.5 for r in rows})
    for ax, label in ((ax_mem, "peak memory (MiB)"), (ax_time, "time (ms)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sides, [f"{side:g}" for side in sides])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("feature map side (sqrt(h*w), pixels)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    device = rows[0]["device"] if rows else ""
    figure.suptitle(f"dense vs ISA attention, {device}" + (" (x: out of memory)" if any(
        r["status"] != "ok" for r in rows) else ""))
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure
