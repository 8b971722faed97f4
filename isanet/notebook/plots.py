"""Plotting: ISA partition grids, attention maps over an image, and the dense-vs-ISA benchmark plot.

Plotting functions only, with no pyplot state: each takes an optional ``matplotlib`` ``Axes`` (to compose
into a notebook figure) or makes its own ``Figure`` and returns it, so the same code serves notebooks, the
CLI (``isanet bench attention --plot``) and tests on a machine without a display.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle
from matplotlib.ticker import NullFormatter, ScalarFormatter

from isanet.engine.log import read_log
from isanet.models.interlaced import (
    Partition,
    long_range_group_ids,
    short_range_group_ids,
)

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
    """One panel per map of an :class:`isanet.analysis.probe.PixelAttention` (long range, short range, composed,
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
    :class:`isanet.analysis.attention_bench.BenchRow` objects or their dicts (the ``--json`` rows). Rows that ran out of
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


# ---- results: class maps and per-class IoU

def colorize(label: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int = 255,
             ignore_colour: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """An ``H x W`` map of class ids as an ``H x W x 3`` picture in the data set's palette (ignore: white)."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    colours[:len(palette)] = np.asarray(palette, dtype=np.uint8)
    colours[ignore_index] = ignore_colour
    return colours[np.asarray(label, dtype=np.int64).clip(0, 255)]


def plot_predictions(rows: Sequence[dict], palette: Sequence[Sequence[int]], titles: Sequence[str] | None = None,
                     panel_size: float = 2.6) -> Figure:
    """One row per sample: the image, then each ``H x W`` class map of the row in the palette.

    ``rows`` are dicts ``{"image": H x W x 3, "maps": [label, prediction, ...]}``; ``titles`` name the columns
    after "image" (e.g. ``["label", "before", "after"]``).
    """
    columns = 1 + max(len(row["maps"]) for row in rows)
    height, width = rows[0]["image"].shape[:2]
    figure = Figure(figsize=(panel_size * columns, panel_size * height / width * len(rows) + 0.5),
                    layout="constrained")
    axes = np.atleast_2d(figure.subplots(len(rows), columns))
    for r, row in enumerate(rows):
        panels = [row["image"]] + [colorize(m, palette) for m in row["maps"]]
        names = ["image", *(titles or [f"map {i}" for i in range(len(row["maps"]))])]
        for c, ax in enumerate(axes[r]):
            if c < len(panels):
                ax.imshow(panels[c], interpolation="nearest")
                if r == 0:
                    ax.set_title(names[c], fontsize="medium")
            ax.set_xticks([])
            ax.set_yticks([])
    return figure


def plot_per_class_iou(result: dict, palette: Sequence[Sequence[int]] | None = None, title: str = "",
                       max_classes: int = 40, ax: Axes | None = None) -> Figure:
    """Horizontal bars of per-class IoU (``result["IoU"]``: name -> percent, NaN = class absent), coloured
    with the palette, mIoU as a dashed line. With many classes (ADE20K's 150) the ``max_classes`` present
    classes with the largest IoU are drawn."""
    names = list(result["IoU"])
    values = np.array([result["IoU"][name] for name in names], dtype=float)
    present = [i for i in range(len(names)) if not np.isnan(values[i])]
    absent = len(names) - len(present)
    if len(present) > max_classes:
        present = sorted(present, key=lambda i: -values[i])[:max_classes]
    if ax is None:
        figure = Figure(figsize=(7, 0.22 * max(len(present), 4) + 1.2), layout="constrained")
        ax = figure.subplots()
    colours = [np.asarray(palette[i]) / 255 if palette is not None and i < len(palette) else "tab:blue"
               for i in present]
    ax.barh(range(len(present)), values[present], color=colours, edgecolor="black", linewidth=0.4)
    ax.set_yticks(range(len(present)), [names[i] for i in present], fontsize="small")
    ax.invert_yaxis()
    ax.axvline(result["mIoU"], color="black", ls="--", label=f"mIoU {result['mIoU']:.2f}")
    ax.set_xlim(0, 100)
    ax.set_xlabel("IoU (%)")
    note = f" ({absent} classes absent from labels and predictions: left out)" if absent else ""
    ax.set_title((title + note).strip(), fontsize="medium")
    ax.legend(loc="lower right")
    return ax.figure



# ---- the two-hop path


def two_hop_path(partition: Partition, source: tuple[int, int],
                 target: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """How information from ``source`` reaches ``target`` through ISA: ``(source, via, target)`` in padded
    coordinates.

    The first (long-range) step lets ``via`` read from its long-range group, the pixels with its own in-block
    offset; the second (short-range) step lets ``target`` read from its block. So ``via`` is the pixel of
    ``target``'s block with ``source``'s in-block offset. ``source`` and ``target`` are unpadded map pixels.
    """
    p = partition
    for name, (row, col) in (("source", source), ("target", target)):
        if not (0 <= row < p.height and 0 <= col < p.width):
            raise ValueError(f"{name} pixel ({row}, {col}) is outside the {p.height}x{p.width} map")
    sy, sx = source[0] + p.pad_top, source[1] + p.pad_left
    ty, tx = target[0] + p.pad_top, target[1] + p.pad_left
    via = ((ty // p.loc_h) * p.loc_h + sy % p.loc_h, (tx // p.loc_w) * p.loc_w + sx % p.loc_w)
    return (sy, sx), via, (ty, tx)


def _grid(ax: Axes, p: Partition, colour: str = "black", lw: float = 0.8) -> None:
    for edge in range(0, p.padded_h + 1, p.loc_h):
        ax.axhline(edge - 0.5, color=colour, lw=lw)
    for edge in range(0, p.padded_w + 1, p.loc_w):
        ax.axvline(edge - 0.5, color=colour, lw=lw)


def plot_two_hop(partition: Partition, source: tuple[int, int], target: tuple[int, int],
                 ax: Axes | None = None) -> Figure:
    """The padded map with the source's long-range group (light), the target's block (outlined) and the path
    source -> via (long-range step) -> target (short-range step). Pixels are unpadded map coordinates."""
    if ax is None:
        figure = Figure(figsize=(4.5, 4.5), layout="constrained")
        ax = figure.subplots()
    p = partition
    (sy, sx), (vy, vx), (ty, tx) = two_hop_path(p, source, target)
    long_ids, short_ids = long_range_group_ids(p).numpy(), short_range_group_ids(p).numpy()
    shade = np.full(long_ids.shape, 0.0)
    shade[long_ids == long_ids[sy, sx]] = 0.45
    shade[short_ids == short_ids[ty, tx]] = np.maximum(shade[short_ids == short_ids[ty, tx]], 0.2)
    shade[(long_ids == long_ids[sy, sx]) & (short_ids == short_ids[ty, tx])] = 0.8
    ax.imshow(shade, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    _grid(ax, p)
    ax.add_patch(Rectangle((p.pad_left - 0.5, p.pad_top - 0.5), p.width, p.height, fill=False, lw=2, ec="black",
                           ls="--"))
    block_y, block_x = (ty // p.loc_h) * p.loc_h, (tx // p.loc_w) * p.loc_w
    ax.add_patch(Rectangle((block_x - 0.5, block_y - 0.5), p.loc_w, p.loc_h, fill=False, lw=2.5, ec="tab:orange"))
    for (y0, x0), (y1, x1), colour, label in (((sy, sx), (vy, vx), "tab:blue", "1: long range"),
                                              ((vy, vx), (ty, tx), "tab:orange", "2: short range")):
        if (y0, x0) != (y1, x1):
            ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=16, lw=2.2,
                                         color=colour, label=label, shrinkA=4, shrinkB=4))
    ax.plot([sx], [sy], marker="*", ms=16, mec="black", mfc="white", ls="none", label="source")
    ax.plot([vx], [vy], marker="o", ms=9, mec="black", mfc="tab:blue", ls="none", label="via")
    ax.plot([tx], [ty], marker="s", ms=9, mec="black", mfc="tab:orange", ls="none", label="target")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, fontsize="small", frameon=False)
    ax.set_title("two hops: source -> via -> target")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.figure


def plot_partition_over_image(image: np.ndarray | torch.Tensor, partition: Partition,
                              pixel: tuple[int, int] | None = None, stride: int | None = None,
                              ax: Axes | None = None) -> Figure:
    """The ISA partition of a feature map drawn over the image it came from.

    Each feature pixel covers ``stride x stride`` image pixels (8 for the D8 backbones; by default the image
    size over the map size). Block outlines are the short-range groups; with ``pixel`` (feature coordinates)
    its block is outlined in orange and its long-range group (one pixel per block) is filled in blue.
    """
    picture = to_display_image(image)
    p = partition
    height, width = picture.shape[:2]
    stride_y = stride or height / p.height
    stride_x = stride or width / p.width
    if ax is None:
        figure = Figure(figsize=(6, 6 * height / width + 0.4), layout="constrained")
        ax = figure.subplots()
    ax.imshow(picture)

    def box(y: int, x: int, h: int, w: int, **style) -> Rectangle:
        # padded feature coordinates -> image coordinates (the padding lies outside the picture)
        return Rectangle(((x - p.pad_left) * stride_x - 0.5, (y - p.pad_top) * stride_y - 0.5), w * stride_x,
                         h * stride_y, **style)

    for block_y in range(0, p.padded_h, p.loc_h):
        for block_x in range(0, p.padded_w, p.loc_w):
            ax.add_patch(box(block_y, block_x, p.loc_h, p.loc_w, fill=False, ec="white", lw=1.0, alpha=0.9))
    if pixel is not None:
        y, x = pixel[0] + p.pad_top, pixel[1] + p.pad_left
        long_ids = long_range_group_ids(p).numpy()
        for gy, gx in zip(*np.nonzero(long_ids == long_ids[y, x])):
            ax.add_patch(box(gy, gx, 1, 1, fc="tab:blue", ec="white", lw=0.6, alpha=0.85))
        ax.add_patch(box((y // p.loc_h) * p.loc_h, (x // p.loc_w) * p.loc_w, p.loc_h, p.loc_w, fill=False,
                         ec="tab:orange", lw=2.5))
        ax.add_patch(box(y, x, 1, 1, fc="white", ec="black", lw=1.2))
    ax.set_xlim(-0.5 - p.pad_left * stride_x, (p.padded_w - p.pad_left) * stride_x - 0.5)
    ax.set_ylim((p.padded_h - p.pad_top) * stride_y - 0.5, -0.5 - p.pad_top * stride_y)
    ax.set_title(f"{p.height}x{p.width} feature map over a {height}x{width} image, down_factor "
                 f"({p.loc_h}, {p.loc_w})", fontsize="medium")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.figure


def complexity_html(partition: Partition, channels: int = 512, batch: int = 1) -> str:
    """The affinity-size formulas for ``partition``, filled in, as a small HTML table."""
    p = partition
    dense, isa = p.affinity_entries()
    hw, padded = p.height * p.width, p.padded_h * p.padded_w

    def mib(entries: int) -> str:
        return f"{entries * 4 * batch / 2**20:,.2f} MiB"

    rows = [
        ("map", f"h x w = {p.height} x {p.width} = {hw:,} pixels"),
        ("down_factor", f"(loc_h, loc_w) = ({p.loc_h}, {p.loc_w})"),
        ("blocks", f"glb_h = ceil(h / loc_h) = {p.glb_h}, glb_w = ceil(w / loc_w) = {p.glb_w}"),
        ("padding", f"to {p.padded_h} x {p.padded_w} (left, right, top, bottom = {p.padding})"),
        ("long-range groups", f"loc_h·loc_w = {p.num_long_range_groups} groups of glb_h·glb_w = "
                              f"{p.glb_h * p.glb_w} pixels"),
        ("short-range groups", f"glb_h·glb_w = {p.num_short_range_groups} blocks of loc_h·loc_w = "
                               f"{p.loc_h * p.loc_w} pixels"),
        ("dense affinity", f"(hw)² = {dense:,} entries ({mib(dense)} in float32)"),
        ("ISA affinities", f"HW·(glb_h·glb_w + loc_h·loc_w) = {padded:,}·({p.glb_h * p.glb_w} + "
                           f"{p.loc_h * p.loc_w}) = {isa:,} entries ({mib(isa)})"),
        ("dense / ISA", f"<b>{dense / isa:.1f}x</b> fewer affinity entries with ISA"),
    ]
    body = "".join(f"<tr><td style='text-align:left;padding-right:1em'><b>{html.escape(k)}</b></td>"
                   f"<td style='text-align:left'>{v if k == 'dense / ISA' else html.escape(v)}</td></tr>"
                   for k, v in rows)
    return f"<table class='isanet-complexity'>{body}</table>"


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing running mean: the curve's trend without hiding where it starts."""
    if window <= 1 or len(values) < window:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    head = cumulative[1:window] / np.arange(1, window)
    return np.concatenate([head, (cumulative[window:] - cumulative[:-window]) / window])


def plot_training_curves(log_or_path: str | os.PathLike | Sequence[dict], ax=None, smooth: int | None = None):
    """Loss (left axis; raw and running mean) and validation mIoU (right axis) against the iteration.

    ``log_or_path`` is a ``log.jsonl`` path or a list of records. Draws on ``ax`` (a new figure when None) and
    returns ``(loss_axis, miou_axis)``. ``smooth`` is the running-mean window (default: about 1/20 of the run).
    """
    import matplotlib.pyplot as plt

    records = read_log(log_or_path) if isinstance(log_or_path, (str, os.PathLike)) else list(log_or_path)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    steps = [(r["iter"], r["loss"]) for r in records if r.get("loss") is not None]
    evals = [(r["iter"], r["mIoU"]) for r in records if r.get("mIoU") is not None]
    if steps:
        iters, losses = np.array(steps, dtype=float).T
        window = smooth if smooth is not None else max(len(losses) // 20, 1)
        ax.plot(iters, losses, color="tab:blue", alpha=0.3 if window > 1 else 1.0, lw=1, label="loss")
        if window > 1:
            ax.plot(iters, _smooth(losses, window), color="tab:blue", lw=2, label=f"loss (mean of {window})")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss", color="tab:blue")
    miou_ax = ax.twinx()
    if evals:
        iters, values = np.array(evals, dtype=float).T
        miou_ax.plot(iters, values, "o-", color="tab:orange", label="val mIoU")
    miou_ax.set_ylabel("validation mIoU (%)", color="tab:orange")
    handles = ax.get_legend_handles_labels()[0] + miou_ax.get_legend_handles_labels()[0]
    if handles:
        ax.legend(handles=handles, loc="center right")
    ax.set_title("training curves" if records else "training curves (no records yet)")
    return ax, miou_ax
