"""Notebook 06's picture of what a kernel computes: FlexAttention's tile grid beside the same pattern in image
space for one pixel (the keys it reads, the scores computed and thrown away, the ones skipped)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap

from isanet.analysis.tiles import TileView, pixel_tiles
from isanet.models.efficient.flex import Pattern

#: empty / partial / full tiles; skipped / computed and masked / read keys
TILE_COLOURS = ListedColormap(["#f2f2f2", "#f4a261", "#2a9d8f"])
PIXEL_COLOURS = ListedColormap(["#f2f2f2", "#f4a261", "#264653"])


def plot_tile_view(view: TileView, pattern: Pattern, height: int, width: int, pixel: tuple[int, int],
                   title: str = ""):
    """Left: the map, for the query ``pixel``: the keys it reads (dark), the scores its tile row computes and
    masks (orange: work the kernel does for nothing), the skipped ones (light). Right: the tile grid (empty,
    partial, full), the pixel's query tile row outlined. Returns the figure."""
    index = pixel[0] * width + pixel[1]
    reads = pattern.dense(height, width)[index]  # HW: the keys the query reads
    computed = pixel_tiles(view, index)  # HW: scores its tile row computes
    picture = (computed.long() + reads.long()).view(height, width)  # 0 skipped, 1 computed and masked, 2 read
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.6))
    left.imshow(picture, cmap=PIXEL_COLOURS, vmin=0, vmax=2)
    left.plot(pixel[1], pixel[0], "r*", markersize=10)
    left.set_title(f"pixel {pixel}: read (dark), computed and masked (orange)", fontsize=9)
    right.imshow(view.states, cmap=TILE_COLOURS, vmin=0, vmax=2, interpolation="nearest")
    tile_row = int((view.perm == index).nonzero()) // view.block_size
    right.axhspan(tile_row - 0.5, tile_row + 0.5, fill=False, edgecolor="red")
    right.set_title(f"{view.order} order: tiles computed / needed {view.computed} / {view.needed} of {view.total}",
                    fontsize=9)
    right.set_xlabel("key tile")
    right.set_ylabel("query tile")
    for axis in (left, right):
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title)
    figure.tight_layout()
    return figure
