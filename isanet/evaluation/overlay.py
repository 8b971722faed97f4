"""Pictures of a prediction: class ids in a data set's palette, blended over the image, with a legend.

What ``isanet predict`` writes and the notebooks show: the blend is ``(1 - opacity) * image + opacity *
palette[label]`` per pixel (mmseg's ``SegLocalVisualizer`` blends the same way), and the legend lists only the
classes present, in class order, so a picture of a street does not carry 150 ADE20K names.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from isanet.data.datasets import IGNORE_INDEX


def colorize(label: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int = IGNORE_INDEX,
             ignore_colour: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """An ``H x W`` map of class ids as an ``H x W x 3`` picture in the data set's palette (ignore: white)."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    colours[:len(palette)] = np.asarray(palette, dtype=np.uint8)
    colours[ignore_index] = ignore_colour
    return colours[np.asarray(label, dtype=np.int64).clip(0, 255)]


def blend(image: np.ndarray, label: np.ndarray, palette: Sequence[Sequence[int]], opacity: float = 0.5) -> np.ndarray:
    """``H x W x 3`` uint8: the palette colours of ``label`` laid over ``image`` with ``opacity`` (0: image only,
    1: colours only)."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    if image.shape[:2] != label.shape:
        raise ValueError(f"image {image.shape[:2]} and label {label.shape} differ in size")
    mixed = (1.0 - opacity) * image.astype(np.float32) + opacity * colorize(label, palette).astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def classes_present(label: np.ndarray, num_classes: int) -> list[int]:
    """Class ids that occur in ``label``, in class order (ids outside ``[0, num_classes)`` left out)."""
    return [int(c) for c in np.unique(label) if 0 <= c < num_classes]


MAX_INSIDE_SHARE = 0.25


def _legend_entries(ids: Sequence[int], classes: Sequence[str], palette: Sequence[Sequence[int]], width: int,
                    font, swatch: int, pad: int) -> list[list[tuple[int, int, int]]]:
    """Entries ``(class id, x, text width)`` wrapped into rows no wider than ``width``."""
    rows: list[list[tuple[int, int, int]]] = [[]]
    x = pad
    for class_id in ids:
        text_width = int(font.getlength(classes[class_id]))
        entry = swatch + 4 + text_width + 2 * pad
        if rows[-1] and x + entry > width:
            rows.append([])
            x = pad
        rows[-1].append((class_id, x, text_width))
        x += entry
    return rows


def draw_legend(picture: np.ndarray, ids: Sequence[int], classes: Sequence[str], palette: Sequence[Sequence[int]],
                inside: bool = False) -> np.ndarray:
    """``picture`` with a legend of the classes ``ids``: in a strip below it (``inside=False``, for images), or
    in a box over its top-left corner (``inside=True``, for video frames, whose size must not change). A box
    that would hide more than :data:`MAX_INSIDE_SHARE` of a (small) frame is left out: the frame matters more."""
    from PIL import Image, ImageDraw, ImageFont

    height, width = picture.shape[:2]
    size = int(min(max(11, width / 60), 22))
    font = ImageFont.load_default(size=size)
    swatch, pad, line = size, 6, size + 8
    rows = _legend_entries(ids, classes, palette, width - 2 * pad, font, swatch, pad) if ids else [[]]
    strip_height = len(rows) * line + pad
    if inside:
        canvas = Image.fromarray(np.ascontiguousarray(picture))
        box_width = max((x + swatch + 4 + w + pad for x, _, w in (r[-1] for r in rows if r)), default=0)
        if not ids or box_width * strip_height > MAX_INSIDE_SHARE * width * height:
            return np.ascontiguousarray(picture)
        backdrop = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        ImageDraw.Draw(backdrop).rectangle([0, 0, box_width, strip_height], fill=(255, 255, 255, 190))
        canvas = Image.alpha_composite(canvas.convert("RGBA"), backdrop).convert("RGB")
        top = 0
    else:
        canvas = Image.new("RGB", (width, height + strip_height), "white")
        canvas.paste(Image.fromarray(np.ascontiguousarray(picture)), (0, 0))
        top = height
    draw = ImageDraw.Draw(canvas)
    for index, row in enumerate(rows):
        y = top + pad // 2 + index * line + (line - swatch) // 2
        for class_id, x, _ in row:
            colour = tuple(int(v) for v in palette[class_id])
            draw.rectangle([x, y, x + swatch, y + swatch], fill=colour, outline=(0, 0, 0))
            draw.text((x + swatch + 4, y + swatch / 2), classes[class_id], fill=(0, 0, 0), font=font, anchor="lm")
    return np.asarray(canvas)


def overlay_picture(image: np.ndarray, label: np.ndarray, classes: Sequence[str], palette: Sequence[Sequence[int]],
                    opacity: float = 0.5, legend_inside: bool = False) -> np.ndarray:
    """The prediction ``label`` blended over ``image`` with a legend of the classes present."""
    ids = classes_present(label, len(classes))
    return draw_legend(blend(image, label, palette, opacity), ids, classes, palette, inside=legend_inside)
