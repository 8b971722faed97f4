"""The attention explorer as one self-contained HTML file: no kernel, no network, opens from disk.

ISA's point is that a pixel's attention is two short rows instead of one row over the whole map, so the page
can carry *all* of ISA's attention for an image: ``HpWp * (glb_h*glb_w + loc_h*loc_w)`` numbers over the padded
feature map, where the dense affinity would be ``hw * hw``. The page stores

* ``long_range`` / ``short_range`` (the captured :class:`isanet.models.isa.ISAWeights`), each softmax
  row as ``uint8`` relative to the row's own maximum (a float32 scale per row): a stored weight is within
  ``max / 510`` of the model's; the composed two-hop map is computed in the page from these two, as
  :func:`isanet.analysis.probe.composed_map` computes it;
* the dense block's queries and keys (``hw x C`` each, float16): the page forms a dense row with one softmax,
  as :meth:`isanet.analysis.probe.AttentionCapture.dense_row` does, since the ``hw x hw`` affinity itself would
  not fit.

The drawing is one ES module, ``templates/explorer.mjs``: the view of the notebook widget
(:class:`isanet.notebook.attention_explorer.AttentionExplorer`, which sends this module's payload for the model it
runs) and, inlined into ``templates/explorer.html`` with a model held in the page, the standalone page; this
module only packs the numbers. The page exposes what it drew as ``window.isanet`` (the feature maps, the pixel, the
last redraw time) so a browser test can check it against the probe.
"""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from isanet.io.atomic import write_text_atomic

#: The panels' titles, one per map.
MAP_TITLES = {
    "long_range": "long range (step 1)",
    "short_range": "short range (step 2)",
    "composed": "composed two-hop (weights only)",
    # for an ISA model this is its own step-1 query/key applied to every pixel: a what-if, not a dense-trained model
    "dense": "dense what-if (step-1 Q/K, all pixels)",
}

#: Quantisation of ISA's rows: uint8 steps of the row maximum, so a weight is off by at most max / 510.
ISA_LEVELS = 255


def _b64(array: np.ndarray) -> str:
    """Little-endian bytes of ``array``, base64 (the page decodes them with typed arrays)."""
    return base64.b64encode(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()).decode()


def quantise_rows(weights: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(..., n)`` softmax rows -> ``uint8`` codes and a float32 scale per row: ``code / 255 * scale`` is
    within ``scale / 510`` of the weight (``scale`` = the row's maximum)."""
    rows = weights.detach().float().cpu().reshape(-1, weights.shape[-1]).numpy()  # (all rows) x n
    scale = rows.max(axis=1).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0)[:, None]
    codes = np.clip(np.rint(rows / safe * ISA_LEVELS), 0, ISA_LEVELS).astype(np.uint8)
    return codes, scale


def dequantise_rows(codes: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """What the page reads back from :func:`quantise_rows` (float64 rows)."""
    return codes.astype(np.float64) / ISA_LEVELS * scale.astype(np.float64)[:, None]


def _jpeg_b64(image: np.ndarray, quality: int = 90) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="jpeg", quality=quality)
    return base64.b64encode(buffer.getvalue()).decode()


def _colormap(name: str = "inferno") -> list[list[int]]:
    from matplotlib import colormaps

    return (np.asarray(colormaps[name](np.linspace(0, 1, 256)))[:, :3] * 255).round().astype(int).tolist()


@dataclass(frozen=True)
class PageSizes:
    """Bytes of the attention as stored and as it would be: the figures the page prints."""

    isa_numbers: int          # HpWp * (glb_h*glb_w + loc_h*loc_w), HpWp: the padded map's pixels
    dense_numbers: int        # (hw)^2, hw: the feature map's pixels
    isa_stored_bytes: int     # uint8 codes + float32 row scales
    dense_qk_bytes: int       # queries + keys as float16
    file_bytes: int = 0


def build_payload(capture, image: np.ndarray, model_label: str, note: str = "",
                  pixel: tuple[int, int] | None = None) -> tuple[dict, PageSizes]:
    """The numbers the page needs, from an :class:`isanet.analysis.probe.AttentionCapture` of ``image``
    (``H x W x 3`` uint8, the picture the model saw)."""
    image = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    height, width = capture.image_size
    if image.shape[:2] != (height, width) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be the {height}x{width}x3 picture the capture was made on, got {image.shape}")
    fh, fw = capture.feature_size
    pixels = fh * fw
    payload: dict = dict(title="ISA attention explorer", model=model_label, note=note,
                         image=dict(height=height, width=width, jpeg=_jpeg_b64(image)),
                         feature=dict(height=fh, width=fw), align_corners=bool(capture.align_corners),
                         pixel=list(pixel or (height // 2, width // 2)), colormap=_colormap(), titles=MAP_TITLES,
                         levels=ISA_LEVELS, partition=None, long_range=None, short_range=None, dense=None)
    isa_numbers = isa_bytes = 0
    if capture.isa is not None:
        p = capture.isa.partition
        payload["partition"] = dict(loc_h=p.loc_h, loc_w=p.loc_w, glb_h=p.glb_h, glb_w=p.glb_w, pad_top=p.pad_top,
                                    pad_left=p.pad_left, padded_h=p.padded_h, padded_w=p.padded_w)
        for name in ("long_range", "short_range"):
            weights = getattr(capture.isa, name)[0]  # groups x members x members (see ISAWeights)
            codes, scale = quantise_rows(weights)
            payload[name] = dict(shape=list(weights.shape), codes=_b64(codes), scale=_b64(scale))
            isa_numbers += codes.size
            isa_bytes += codes.nbytes + scale.nbytes
    dense_bytes = 0
    if capture.dense_query is not None:
        query = capture.dense_query.detach().cpu().numpy().astype(np.float16)  # hw x C
        key = capture.dense_key.detach().cpu().numpy().astype(np.float16)      # hw x C
        payload["dense"] = dict(channels=int(query.shape[1]), query=_b64(query), key=_b64(key))
        dense_bytes = query.nbytes + key.nbytes
    sizes = PageSizes(isa_numbers=isa_numbers, dense_numbers=pixels * pixels, isa_stored_bytes=isa_bytes,
                      dense_qk_bytes=dense_bytes)
    payload["sizes"] = dict(isa_numbers=isa_numbers, dense_numbers=pixels * pixels, isa_stored_bytes=isa_bytes,
                            dense_qk_bytes=dense_bytes)
    return payload, sizes


TEMPLATES = Path(__file__).parent / "templates"  # the pages, the explorers' ES modules and the page model
PAGE_MODEL = "page_model.js"  # a widget model held in a standalone page, for the explorers' ES modules
EXPLORER_MODULE = "explorer.mjs"  # the attention explorer's view: notebook widget and standalone page


def template_text(name: str) -> str:
    """A file of the package's ``templates/`` folder."""
    return resources.files("isanet.notebook").joinpath(f"templates/{name}").read_text(encoding="utf-8")


def render_html(payload: dict, template_name: str = "explorer.html", module: str | None = None) -> str:
    """The template (a file of ``templates/``) with the payload inlined (``</`` escaped so no string can close the
    script element), and the ES module ``module`` (a file of ``templates/``, the widget's own view) inlined where
    the template says ``/*ISANET_MODULE*/``, with the kernel-less model it runs on (``templates/page_model.js``) at
    ``/*ISANET_PAGE_MODEL*/``. The partition and pattern pages (:mod:`isanet.notebook.explorer_pages`)
    use it too."""
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    page = template_text(template_name).replace("/*ISANET_DATA*/null", data, 1)
    if module is None:
        return page
    page = page.replace("/*ISANET_MODULE*/", template_text(module), 1)
    return page.replace("/*ISANET_PAGE_MODEL*/", template_text(PAGE_MODEL), 1)


def save_explorer_html(capture, image: np.ndarray, path: str | os.PathLike, model_label: str, note: str = "",
                       pixel: tuple[int, int] | None = None) -> PageSizes:
    """Write the standalone explorer page for ``capture`` of ``image`` to ``path`` (atomically)."""
    payload, sizes = build_payload(capture, image, model_label, note, pixel)
    text = render_html(payload, "explorer.html", EXPLORER_MODULE)
    written = write_text_atomic(text, path)
    return PageSizes(sizes.isa_numbers, sizes.dense_numbers, sizes.isa_stored_bytes, sizes.dense_qk_bytes,
                     Path(written).stat().st_size)


def describe(sizes: PageSizes) -> str:
    """One line for a console: the file and what ISA's attention takes next to dense's."""
    return (f"{sizes.file_bytes / 1e6:.2f} MB; ISA's affinities {sizes.isa_numbers:,} numbers "
            f"({sizes.isa_numbers * 4 / 1e3:,.0f} kB as float32, {sizes.isa_stored_bytes / 1e3:,.0f} kB stored); "
            f"dense's {sizes.dense_numbers:,} ({sizes.dense_numbers * 4 / 1e3:,.0f} kB as float32)")
