"""Pictures of ISA's partition: the long-range groups and short-range blocks of a map, the two-hop path
between two pixels, the blocks over an image, the ``HpWp x HpWp`` relation matrices over the padded map and
their product, the tensor shapes of one forward pass, the pixels moving through the regroupings, and the
affinity-cost table.

They draw what :class:`isanet.models.isa.Partition` computes, so a picture can never disagree with the
model's own grouping.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from isanet.analysis.isa_matrices import long_range_mask, long_range_order, short_range_mask, short_range_order
from isanet.models.isa import (
    Partition,
    group_long_range,
    long_range_group_ids,
    long_to_short_range,
    short_range_group_ids,
    ungroup_short_range,
)
from isanet.notebook.plots import axes_grid, mark_pixel, to_display_image


def _outline_padding(ax: Axes, p: Partition) -> None:
    ax.add_patch(Rectangle((p.pad_left - 0.5, p.pad_top - 0.5), p.width, p.height, fill=False, lw=2,
                           ec="black", ls="--"))


def plot_partition(partition: Partition, pixel: tuple[int, int] | None = None,
                   axes: Sequence[Axes] | None = None) -> Figure:
    """Two panels on the padded map: the long-range groups (colour = in-block offset; one group is all the
    cells of one colour, a stride-``loc`` lattice) and the short-range blocks. The dashed box is the
    unpadded map; with ``pixel`` (unpadded feature coordinates) its two groups are highlighted."""
    figure, axes = (axes[0].figure, list(axes)) if axes is not None else axes_grid(None, 2)
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
            mark_pixel(ax, y, x)
        ax.set_title(f"{title} ({count})")
        ax.set_xticks([])
        ax.set_yticks([])
    return figure


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
    (block_y, block_x), (offset_y, offset_x) = p.block_origin(ty, tx), p.offset(sy, sx)
    via = (block_y + offset_y, block_x + offset_x)  # the target's block, at the source's in-block offset
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
    block_y, block_x = p.block_origin(ty, tx)
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
                              ax: Axes | None = None, source: str | None = None) -> Figure:
    """The ISA partition of a feature map drawn over the image it came from.

    Each feature pixel covers ``stride x stride`` image pixels (8 for the D8 backbones; by default the image
    size over the map size). Block outlines are the short-range groups; with ``pixel`` (feature coordinates)
    its block is outlined in orange and its long-range group (one pixel per block) is filled in blue.
    ``source`` names the picture in the title (e.g. "synthetic sample"), so that a drawn sample is never
    mistaken for a photograph.
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
        ax.add_patch(box(*p.block_origin(y, x), p.loc_h, p.loc_w, fill=False,
                         ec="tab:orange", lw=2.5))
        ax.add_patch(box(y, x, 1, 1, fc="white", ec="black", lw=1.2))
    ax.set_xlim(-0.5 - p.pad_left * stride_x, (p.padded_w - p.pad_left) * stride_x - 0.5)
    ax.set_ylim((p.padded_h - p.pad_top) * stride_y - 0.5, -0.5 - p.pad_top * stride_y)
    ax.set_title((f"{source}: " if source else "") + f"{p.height}x{p.width} feature map over a {height}x{width} "
                 f"image, down_factor ({p.loc_h}, {p.loc_w})", fontsize="medium")
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
        ("ISA affinities", f"HpWp·(glb_h·glb_w + loc_h·loc_w) = {padded:,}·({p.glb_h * p.glb_w} + "
                           f"{p.loc_h * p.loc_w}) = {isa:,} entries ({mib(isa)})"),
        ("dense / ISA", f"<b>{dense / isa:.1f}x</b> fewer affinity entries with ISA"),
    ]
    body = "".join(f"<tr><td style='text-align:left;padding-right:1em'><b>{html.escape(k)}</b></td>"
                   f"<td style='text-align:left'>{v if k == 'dense / ISA' else html.escape(v)}</td></tr>"
                   for k, v in rows)
    return f"<table class='isanet-complexity'>{body}</table>"


def _matrix_panel(ax: Axes, matrix: np.ndarray, title: str, cmap: str = "Greys", **style) -> None:
    ax.imshow(matrix, cmap=cmap, interpolation="nearest", **style)
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel("key / source position")
    ax.set_ylabel("query / target position")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_relation_masks(partition: Partition) -> Figure:
    """The ``HpWp x HpWp`` relations of the two steps over the padded ``Hp x Wp`` map (black: ``query`` attends
    to ``key``). Top: positions in row-major order, as the map stores them. Bottom: each matrix in the order
    that lists its groups one after the other, where it becomes block diagonal (dense attention inside each
    group)."""
    p = partition
    figure = Figure(figsize=(8.5, 8.8), layout="constrained")
    axes = figure.subplots(2, 2)
    long_mask, short_mask = long_range_mask(p).numpy(), short_range_mask(p).numpy()
    long_order, short_order = long_range_order(p).numpy(), short_range_order(p).numpy()
    pixels = p.padded_h * p.padded_w
    _matrix_panel(axes[0, 0], long_mask, f"long range L, row-major ({pixels}x{pixels})")
    _matrix_panel(axes[0, 1], short_mask, f"short range S, row-major ({pixels}x{pixels})")
    _matrix_panel(axes[1, 0], long_mask[np.ix_(long_order, long_order)],
                  f"L by long-range group: {p.num_long_range_groups} blocks of {p.num_short_range_groups}")
    _matrix_panel(axes[1, 1], short_mask[np.ix_(short_order, short_order)],
                  f"S by block: {p.num_short_range_groups} blocks of {p.num_long_range_groups}")
    return figure


def plot_two_hop_product(partition: Partition) -> Figure:
    """``S x L = paths``: the short-range relation times the long-range relation, all three in the short-range
    (block by block) order. Entry ``[p, r]`` of the product counts the positions ``q`` with ``S[p, q] L[q, r]``,
    the two-hop paths from ``r`` to ``p``; a matrix with no zero means that every position reaches every other."""
    p = partition
    order = short_range_order(p)
    long_mask, short_mask = long_range_mask(p)[order][:, order], short_range_mask(p)[order][:, order]
    paths = (short_mask.long() @ long_mask.long()).numpy()
    figure = Figure(figsize=(12, 4.4), layout="constrained")
    axes = figure.subplots(1, 3)
    _matrix_panel(axes[0], short_mask.numpy(), "S (short range)")
    _matrix_panel(axes[1], long_mask.numpy(), "x  L (long range)")
    _matrix_panel(axes[2], paths, f"=  S L: {paths.min()} to {paths.max()} paths per pair", vmin=0,
                  vmax=max(1, int(paths.max())))
    figure.suptitle(f"{p.padded_h}x{p.padded_w} padded map, down_factor ({p.loc_h}, {p.loc_w}); positions "
                    "listed block by block", fontsize="medium")
    return figure


def isa_shape_steps(partition: Partition, batch: int = 1, channels: int = 512) -> list[tuple[str, tuple[int, ...]]]:
    """``(step, shape)`` of the tensor after each step of one ISA forward pass on ``batch x channels x h x w``,
    taken by running the package's own padding and regroupings on a ``meta`` tensor (shapes only)."""
    p = partition
    x = torch.empty(batch, channels, p.height, p.width, device="meta")
    padded = F.pad(x, p.padding)
    by_group = group_long_range(padded, p)
    by_block = long_to_short_range(by_group, p)
    ungrouped = ungroup_short_range(by_block, p)
    cropped = ungrouped[:, :, p.pad_top:p.pad_top + p.height, p.pad_left:p.pad_left + p.width]
    return [("input", tuple(x.shape)), ("pad", tuple(padded.shape)), ("group (long range)", tuple(by_group.shape)),
            ("attend in each group", tuple(by_group.shape)), ("regroup (short range)", tuple(by_block.shape)),
            ("attend in each block", tuple(by_block.shape)), ("ungroup", tuple(ungrouped.shape)),
            ("crop", tuple(cropped.shape))]


def regrouped_indices(partition: Partition) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The row-major index of every padded position (``Hp x Wp``), pushed through the package's own two
    regroupings: ``(padded, by_group, by_block)`` with ``by_group`` of shape ``(loc_h*loc_w) x glb_h x glb_w``
    (one small map per long-range group) and ``by_block`` of shape ``(glb_h*glb_w) x loc_h x loc_w`` (one per
    block). Each entry says which pixel sits there, so the pictures show the pixels moving."""
    p = partition
    padded = torch.arange(p.padded_h * p.padded_w).view(1, 1, p.padded_h, p.padded_w)  # HpWp -> 1 x 1 x Hp x Wp
    by_group = group_long_range(padded, p)  # (loc_h*loc_w) x 1 x glb_h x glb_w
    by_block = long_to_short_range(by_group, p)  # (glb_h*glb_w) x 1 x loc_h x loc_w
    return padded[0, 0], by_group[:, 0], by_block[:, 0]


def _labelled(ax: Axes, indices: torch.Tensor, groups: np.ndarray, colours: ListedColormap, title: str) -> None:
    """``indices`` (a small map of padded positions) coloured by each position's long-range group, labelled."""
    ax.imshow(groups[indices.numpy()], cmap=colours, vmin=-0.5, vmax=colours.N - 0.5, interpolation="nearest")
    for (row, col), index in np.ndenumerate(indices.numpy()):
        ax.text(col, row, str(index), ha="center", va="center", fontsize="x-small")
    ax.set_title(title, fontsize="small")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_regrouping(partition: Partition) -> Figure:
    """The padded map with each position's index (colour = its long-range group), then the same indices after
    the long-range regrouping (one panel per group: the "images" step 1 attends in) and after the short-range
    one (one panel per block). A small partition keeps the labels readable (e.g. 6 x 6 with 3 x 3 blocks)."""
    p = partition
    padded, by_group, by_block = regrouped_indices(p)
    groups = long_range_group_ids(p).flatten().numpy()  # HpWp: the colour of each position
    colours = ListedColormap(np.random.default_rng(0).uniform(0.35, 0.95, size=(p.num_long_range_groups, 3)))
    columns = max(p.num_long_range_groups, p.num_short_range_groups)
    figure = Figure(figsize=(1.3 * columns + 3, 6.5), layout="constrained")
    top, middle, bottom = figure.subfigures(3, 1, height_ratios=(2, 1, 1))
    _labelled(top.subplots(), padded, groups, colours, f"padded {p.padded_h}x{p.padded_w} map: the index of "
              "each position (colour = long-range group)")
    for ax, group, members in zip(np.atleast_1d(middle.subplots(1, p.num_long_range_groups)), range(len(by_group)),
                                  by_group):
        _labelled(ax, members, groups, colours, f"group {group}")
    middle.suptitle("after group_long_range (= pixel_unshuffle): one map per long-range group", fontsize="small")
    for ax, block, members in zip(np.atleast_1d(bottom.subplots(1, p.num_short_range_groups)), range(len(by_block)),
                                  by_block):
        _labelled(ax, members, groups, colours, f"block {block}")
    bottom.suptitle("after long_to_short_range: one map per block", fontsize="small")
    return figure
