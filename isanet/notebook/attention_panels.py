"""The attention explorer's pictures, from a capture alone (no widgets): the panels of one pixel's maps over the
image, and the picking image with the query's block, its long-range group and a cross-hair.

Coordinates are ``(row, col)``: *image* pixels index the picture shown, *feature* pixels the 1/8-resolution
map the attention runs on (see :class:`isanet.analysis.probe.AttentionCapture`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from isanet.models.isa import long_range_group_ids


def array_png(image: np.ndarray) -> bytes:
    """An ``H x W x 3`` uint8 array as PNG bytes."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(image)).save(buffer, format="png")
    return buffer.getvalue()


def _attention_cmap() -> ListedColormap:
    from matplotlib import colormaps

    return colormaps["inferno"]


MAP_TITLES = {
    "long_range": "long range (step 1)",
    "short_range": "short range (step 2)",
    "composed": "composed two-hop (weights only)",
    # for an ISA model this is its own step-1 query/key applied to every pixel: a what-if, not a dense-trained model
    "dense": "dense what-if (step-1 Q/K, all pixels)",
}


def plot_attention_panels(result, image: np.ndarray, image_pixel: tuple[float, float] | None = None,
                          resolution: str = "feature", alpha: float = 0.65, panel_size: float = 3.2) -> Figure:
    """The maps of an :class:`isanet.analysis.probe.PixelAttention` side by side over ``image`` (``H x W x 3``).

    ``resolution="feature"`` shows each feature cell as the block of image pixels it covers (exact: a
    long-range group really is one cell per block); ``"image"`` shows the bilinear upsampling the model applies
    to its logits. Each panel has its own colour scale (its maximum is printed).
    """
    names = [name for name in ("long_range", "short_range", "composed", "dense") if getattr(result, name)]
    height, width = image.shape[:2]
    aspect = height / width
    columns = 2 if aspect < 0.7 and len(names) == 4 else len(names)
    rows = math.ceil(len(names) / columns)
    panel_width = panel_size * (1.6 if columns == 2 else 1.0)
    figure = Figure(figsize=(panel_width * columns, (panel_width * aspect + 0.6) * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    pixel = image_pixel if image_pixel is not None else result.image_pixel
    cmap = _attention_cmap()
    for ax, name in zip(axes, names):
        attention_map = getattr(result, name)
        ax.imshow(image)
        values = attention_map.feature if resolution == "feature" else attention_map.image
        ax.imshow(values, cmap=cmap, alpha=alpha, interpolation="nearest", extent=(-0.5, width - 0.5, height - 0.5,
                                                                                   -0.5))
        ax.plot([pixel[1]], [pixel[0]], marker="*", ms=15, mec="black", mfc="white", ls="none")
        keys = int(np.count_nonzero(attention_map.feature > 0))
        title = f"{MAP_TITLES[name]}\n{keys} keys, max {float(values.max()):.2g}"
        if attention_map.padding_mass > 1e-4:
            title += f", {attention_map.padding_mass:.0%} on padding"
        ax.set_title(title, fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
    return figure


def draw_picker(image: np.ndarray, pixel: tuple[int, int], scale: int = 1,
                block_box: tuple[float, float, float, float] | None = None,
                group_points: Sequence[tuple[float, float]] = ()) -> np.ndarray:
    """The picking image: ``image`` enlarged ``scale`` times (nearest), the query's block outlined (``block_box``
    = top, left, bottom, right in image pixels), its long-range group dotted, and a cross-hair at ``pixel``."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    height, width = image.shape[:2]
    picture = PILImage.fromarray(np.ascontiguousarray(image)).resize((width * scale, height * scale),
                                                                     PILImage.NEAREST)
    draw = ImageDraw.Draw(picture)
    if block_box is not None:
        top, left, bottom, right = (value * scale for value in block_box)
        draw.rectangle([left, top, right - 1, bottom - 1], outline=(255, 140, 0), width=max(2, scale))
    radius = max(2, scale + 1)
    for y, x in group_points:
        cy, cx = (y + 0.5) * scale, (x + 0.5) * scale
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=(40, 120, 255), outline="white")
    cy, cx = (pixel[0] + 0.5) * scale, (pixel[1] + 0.5) * scale
    arm = 6 * max(1, scale)
    for colour, thickness in (((0, 0, 0), 5), ((255, 255, 255), 2)):
        draw.line([cx - arm, cy, cx + arm, cy], fill=colour, width=thickness)
        draw.line([cx, cy - arm, cx, cy + arm], fill=colour, width=thickness)
    return np.asarray(picture)


def picker_marks(capture, feature_pixel: tuple[int, int],
                 image_size: tuple[int, int]) -> tuple[tuple[float, float, float, float] | None,
                                                       list[tuple[float, float]]]:
    """``(block_box, group_points)`` of :func:`draw_picker` for the query at ``feature_pixel`` of an
    :class:`isanet.analysis.probe.AttentionCapture`: its block's box and the other members of its long-range
    group, in image pixels (none for a model without ISA)."""
    if capture.isa is None:
        return None, []
    p = capture.isa.partition
    height, width = image_size
    fh, fw = capture.feature_size
    stride_y, stride_x = height / fh, width / fw
    y, x = feature_pixel[0] + p.pad_top, feature_pixel[1] + p.pad_left  # in the padded map
    block_y, block_x = p.block_origin(y, x)
    top, left = block_y - p.pad_top, block_x - p.pad_left
    block_box = (top * stride_y, left * stride_x, (top + p.loc_h) * stride_y, (left + p.loc_w) * stride_x)
    long_ids = long_range_group_ids(p).numpy()
    points = []
    for gy, gx in zip(*np.nonzero(long_ids == long_ids[y, x])):
        fy, fx = gy - p.pad_top, gx - p.pad_left
        if 0 <= fy < fh and 0 <= fx < fw and (fy, fx) != tuple(feature_pixel):
            points.append(capture.to_image(fy, fx))
    return block_box, points
