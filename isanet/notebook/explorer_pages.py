"""The partition explorer (notebook 01) and the pattern explorer (notebook 06) as standalone HTML pages: one file
each, no kernel, no network, as notebook 02's attention explorer is (:mod:`isanet.notebook.explorer_html`).

The pages recompute their picture in the browser from a click or a slider, but the geometry they draw comes
from the package, so a page cannot disagree with the modules:

* the partition page stores, for every side length and ``down_factor`` its sliders offer, what
  :class:`isanet.models.isa.Partition` says about one axis (blocks, padding before, padded length); the
  groups, blocks, the two-hop path and the affinity counts of a map follow from those by index arithmetic;
* the pattern page stores, for every ``size`` its slider offers, the ``HW x HW`` reach after one and two layers
  of each method, as :func:`isanet.analysis.reach.reach` computes it from the modules' own patterns: one bit per
  (query, key), rows padded to whole bytes (``numpy.packbits``), each distinct matrix once (dense, ISA and
  axial reach everything, and most of them are the same all-ones matrix).

The drawing is the package data files ``templates/partition.html`` and ``templates/patterns.html``.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from isanet.analysis.reach import reach
from isanet.io.atomic import write_text_atomic
from isanet.models.efficient.registry import METHODS
from isanet.models.isa import Partition
from isanet.notebook.explorer_html import _b64, render_html

PARTITION_MODULE = "partition.mjs"  # the partition explorer's view: notebook widget and standalone page
PATTERN_MODULE = "patterns.mjs"  # the pattern explorer's view, the same way
#: The reached / not reached colours of notebook 06's pictures (attention_patterns._REACHED).
REACH_COLOURS = ("#f2f2f2", "#2b7bba")


def _check_pixel(name: str, pixel: tuple[int, int], height: int, width: int) -> None:
    if not (0 <= pixel[0] < height and 0 <= pixel[1] < width):
        raise ValueError(f"{name} {tuple(pixel)} is outside the {height}x{width} map")


def axis_table(max_size: int, max_down_factor: int) -> dict[str, list[list[int]]]:
    """``table[str(f)][n - 1] = [blocks, pad_before, padded]`` of one axis of length ``n`` cut by ``down_factor``
    ``f``, as :class:`Partition` computes them (its rows and columns follow the same rule)."""
    table = {}
    for factor in range(1, max_down_factor + 1):
        rows = []
        for size in range(1, max_size + 1):
            p = Partition(size, 1, factor, 1)
            rows.append([p.glb_h, p.pad_top, p.padded_h])
        table[str(factor)] = rows
    return table


def partition_payload(height: int = 13, width: int = 18, down_factor: int = 4, source: tuple[int, int] = (0, 0),
                      target: tuple[int, int] | None = None, max_size: int = 40,
                      max_down_factor: int = 12) -> dict:
    """What the partition page needs: its first state (the notebook explorer's), the sliders' bounds and
    :func:`axis_table` for every position of the sliders."""
    target = target if target is not None else (height - 1, width - 1)
    if not (1 <= height <= max_size and 1 <= width <= max_size):
        raise ValueError(f"height and width must be in 1..max_size={max_size}, got {height}x{width}")
    if not 1 <= down_factor <= max_down_factor:
        raise ValueError(f"down_factor must be in 1..max_down_factor={max_down_factor}, got {down_factor}")
    _check_pixel("source", source, height, width)
    _check_pixel("target", target, height, width)
    return dict(title="ISA partition explorer", height=height, width=width, down_factor=down_factor,
                source=list(source), target=list(target), max_size=max_size, max_down_factor=max_down_factor,
                axes=axis_table(max_size, max_down_factor))


def pack_reach(matrix: np.ndarray) -> str:
    """``HW x HW`` booleans -> base64 of one bit per entry, each row padded to whole bytes, most significant
    bit first (``numpy.packbits``): entry ``(q, k)`` is bit ``7 - k % 8`` of byte ``q * ceil(HW / 8) + k // 8``."""
    return _b64(np.packbits(np.asarray(matrix, dtype=bool), axis=1))


def unpack_reach(text: str, pixels: int) -> np.ndarray:
    """What the page reads back from :func:`pack_reach`: the ``pixels x pixels`` booleans."""
    packed = np.frombuffer(base64.b64decode(text), dtype=np.uint8).reshape(pixels, -1)  # HW x ceil(HW / 8)
    return np.unpackbits(packed, axis=1, count=pixels).astype(bool)


def pattern_payload(height: int = 20, width: int = 28, pixel: tuple[int, int] = (5, 9), size: int = 4,
                    methods: Sequence[str] = tuple(METHODS), sizes: Sequence[int] = range(2, 9),
                    layers: Sequence[int] = (1, 2)) -> dict:
    """What the pattern page needs: for each ``size`` in ``sizes``, method and number of layers, the index of
    its reach matrix in ``matrices`` (distinct packed matrices, see :func:`pack_reach`)."""
    sizes, methods, layers = [int(s) for s in sizes], list(methods), [int(n) for n in layers]
    unknown = [method for method in methods if method not in METHODS]
    if unknown:
        raise ValueError(f"methods must be among {', '.join(METHODS)}, got {', '.join(unknown)}")
    if size not in sizes:
        raise ValueError(f"size {size} must be one of sizes {sizes}")
    _check_pixel("pixel", pixel, height, width)
    matrices: list[str] = []
    seen: dict[str, int] = {}
    index: dict[str, dict[str, list[int]]] = {}
    for side in sizes:
        index[str(side)] = {}
        for method in methods:
            entries = []
            for count in layers:
                packed = pack_reach(reach(method, height, width, side, count).numpy())
                digest = hashlib.sha256(packed.encode()).hexdigest()
                if digest not in seen:
                    seen[digest] = len(matrices)
                    matrices.append(packed)
                entries.append(seen[digest])
            index[str(side)][method] = entries
    return dict(title="Attention patterns: reach after stacked layers", height=height, width=width,
                pixel=list(pixel), size=size, sizes=sizes, layers=layers, methods=methods,
                labels={method: METHODS[method].label for method in methods}, colours=list(REACH_COLOURS),
                matrices=matrices, index=index)


def save_page(payload: dict, template_name: str, path: str | os.PathLike, module: str | None = None) -> int:
    """Write ``payload`` (and the ES ``module``, see :func:`render_html`) into the template ``template_name`` at
    ``path`` (atomically); returns the file's bytes."""
    return Path(write_text_atomic(render_html(payload, template_name, module), path)).stat().st_size


def save_partition_page(path: str | os.PathLike, **settings) -> int:
    """The partition page for :func:`partition_payload`'s ``settings``, written to ``path``: the notebook widget's
    own module (``templates/partition.mjs``) drawing from the stored data; its size in bytes."""
    return save_page(partition_payload(**settings), "partition.html", path, PARTITION_MODULE)


def save_pattern_page(path: str | os.PathLike, **settings) -> int:
    """The pattern page for :func:`pattern_payload`'s ``settings``, written to ``path``: the notebook widget's own
    module (``templates/patterns.mjs``) drawing from the stored data; its size in bytes."""
    return save_page(pattern_payload(**settings), "patterns.html", path, PATTERN_MODULE)
