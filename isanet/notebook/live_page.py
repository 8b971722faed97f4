"""The teaching model live in a web page: the reader moves and recolours the beacon, the model runs again in the
browser, and the predicted teams and ISA's two maps redraw.

:func:`save_live_page` writes ``NAME.html`` and, beside it, ``NAME_files/``: the teaching model as the ONNX graph
of :mod:`isanet.io.live_export` (RGBA bytes in; labels and both steps' softmax rows out) and the wasm build of
onnxruntime-web (``web/package.json`` pins it; ``npm ci --prefix web``). Any static server of that folder shows
the live page (``python3 kit.py site --serve`` serves the site with the headers that allow wasm threads). Opened
from ``file://``, where browsers load neither the runtime's modules nor its wasm, or written where the runtime
was not installed, the same page shows the outputs computed here for its first picture (clickable, not
editable) and says how to get the live one.

The page is scriptable (tests, teachers): ``window.isanetLive`` holds ``ready`` (a Promise of true when the model
runs, false for the precomputed view), ``backend`` (``"wasm (1 thread)"``... or ``"precomputed"``),
``predict(rgba, width, height)`` (a Promise of ``{labels, longRange, shortRange}``: an ``Int32Array`` of class
ids at the picture's resolution and the two steps' weights as ``Float32Array`` in :mod:`isanet.io.live_export`'s
layout), ``maps(row, col)`` (the long-range, short-range and composed maps of feature pixel ``(row, col)`` of the
current outputs, ``Float32Array`` of ``h * w``, as :meth:`isanet.analysis.probe.AttentionCapture.pixel` gives
them before upsampling), ``select(row, col)`` and ``lastRunMs``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from isanet.data.context import BEACON, CONTEXT_CLASSES, CONTEXT_PALETTE, TEAM_CLASSES, TEAM_COLOURS
from isanet.io.atomic import atomic_path, write_text_atomic
from isanet.io.live_export import LiveModel, export_live
from isanet.io.outputs import check_replaceable
from isanet.notebook.explorer_html import _b64, render_html
from isanet.notebook.session import repo_root

#: onnxruntime-web's wasm backend: the script (global ``ort``), the module it loads and the wasm binary.
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
MODEL_FILE = "model.onnx"
SERVE_HINT = "python3 kit.py site --serve (the site), or python3 -m http.server in this page's folder"
PAGE_SCALE = 3  # CSS pixels per picture pixel


@dataclass(frozen=True)
class Picture:
    """One picture the page offers: its name, ``H x W x 3`` uint8 RGB, and its ``H x W`` label, whose beacon
    pixels (class :data:`isanet.data.context.BEACON`) the page finds and moves; None for a picture of your own:
    the model's prediction stands in for it."""

    name: str
    image: np.ndarray
    label: np.ndarray | None


def teaching_pictures(count: int = 4) -> list[Picture]:
    """The first ``count`` validation pictures of the relay task, named by their beacon's team."""
    from isanet.notebook.teaching import teaching_samples

    samples = teaching_samples()[:count]
    return [Picture(f"validation picture {index} ({CONTEXT_CLASSES[team_of(sample['label'])]})", sample["image"],
                    sample["label"]) for index, sample in enumerate(samples)]


def team_of(label: np.ndarray) -> int:
    """The team class of a context label's objects (the first team class it holds)."""
    return next(int(value) for value in TEAM_CLASSES if (label == value).any())


def runtime_source() -> Path | None:
    """The npm copy of onnxruntime-web's dist folder, or None when ``npm ci --prefix web`` has not run."""
    source = repo_root() / "web" / "node_modules" / "onnxruntime-web" / "dist"
    return source if all((source / name).is_file() for name in RUNTIME_FILES) else None


def _rgba(image: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8 -> ``H x W x 4`` with an opaque alpha: what a canvas holds."""
    return np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=-1)


def live_outputs(live: LiveModel, image: np.ndarray) -> dict[str, np.ndarray]:
    """The live graph's outputs on ``image`` computed with PyTorch: what the page shows without the runtime,
    and what the page's own runs must agree with."""
    with torch.no_grad():
        labels, long_range, short_range = live(torch.from_numpy(_rgba(image))[None])
    return {"labels": labels.numpy(), "long_range": long_range.numpy(), "short_range": short_range.numpy()}


def save_live_page(path: str | os.PathLike, model: nn.Module, pictures: list[Picture], label: str, note: str, *,
                   mean: tuple[float, float, float], std: tuple[float, float, float],
                   query: tuple[int, int] | None = None) -> Path:
    """Write the live page ``path`` and its folder ``<stem>_files/`` (model and runtime) beside it; returns the
    folder. ``mean`` and ``std`` normalise as the model was trained (its test settings); ``pictures`` (at least
    one, all of one size: the graph's input is fixed at it) are offered in the page, the first opened and shown by
    the precomputed view; ``query`` is the first query pixel (picture row, col; default: the centre). A page or
    folder the kit did not write is refused first (the output guard)."""
    if not pictures:
        raise ValueError("pictures: the live page needs at least one picture")
    size = pictures[0].image.shape[:2]
    if any(picture.image.shape[:2] != size for picture in pictures):
        raise ValueError(f"pictures: all must have one size (the graph's input), the first is {size[0]}x{size[1]}")
    path = Path(path)
    folder = path.with_name(f"{path.stem}_files")
    check_replaceable(path, "--out")
    check_replaceable(folder, "--out")
    model = model.eval().cpu().float()
    live = LiveModel(model, mean, std).eval()
    first = live_outputs(live, pictures[0].image)
    # a picture of your own (no label) is labelled by the model's prediction; the first one's is already computed
    labels = [picture.label if picture.label is not None else
              (first if index == 0 else live_outputs(live, picture.image))["labels"]
              for index, picture in enumerate(pictures)]
    runtime = runtime_source()
    with atomic_path(folder) as staging:
        staging.mkdir()
        export_live(model, staging / MODEL_FILE, size, mean, std)
        if runtime is not None:
            (staging / "ort").mkdir()
            for name in RUNTIME_FILES:
                shutil.copyfile(runtime / name, staging / "ort" / name)
    partition = feature_geometry(model, size)
    payload = {
        "label": label, "note": note, "size": list(size), "scale": PAGE_SCALE, "partition": partition,
        "align_corners": bool(model.align_corners), "classes": list(CONTEXT_CLASSES),
        "palette": [list(colour) for colour in CONTEXT_PALETTE], "team_colours": [list(c) for c in TEAM_COLOURS],
        "team_classes": list(TEAM_CLASSES), "beacon_class": BEACON,
        "pictures": [{"name": picture.name, "rgba": _b64(_rgba(picture.image)), "label": _b64(label.astype(np.uint8))}
                     for picture, label in zip(pictures, labels, strict=True)],
        "query": list(query) if query else None,
        "precomputed": {name: _b64(values) for name, values in first.items()},
        "model": f"{folder.name}/{MODEL_FILE}", "runtime": f"{folder.name}/ort/" if runtime is not None else None,
        "serve_hint": SERVE_HINT,
    }
    write_text_atomic(render_html(payload, "live.html"), path)
    return folder


def feature_geometry(model: nn.Module, size: tuple[int, int]) -> dict[str, int]:
    """The feature map's size and ISA's ``down_factor`` for ``size`` pictures (the page's geometry)."""
    with torch.no_grad():
        features = model.backbone(torch.zeros(1, 3, *size))
        height, width = model.decode_head.in_conv(features[model.decode_head.in_index]).shape[2:]
    loc_h, loc_w = model.decode_head.down_factor
    return {"height": int(height), "width": int(width), "loc_h": int(loc_h), "loc_w": int(loc_w)}


def save_teaching_live_page(path: str | os.PathLike, first: int = 0, count: int = 4,
                            query: tuple[int, int] | None = None) -> Path:
    """The live page of the shipped teaching model on the first ``count`` validation pictures of the relay task,
    opening on picture ``first`` (notebook 02's ``IMAGE_INDEX``) at ``query`` (picture row, col; default: the object
    pixel that weighs its relay pixels most); what the site embeds in notebook 02's page and ``isanet attention
    --teaching`` writes without IMAGE. Returns the page's folder."""
    from isanet.analysis.probe import capture
    from isanet.analysis.relay import relay_weight_map, strongest_relay_pixel
    from isanet.analysis.same_class import labels_at_features
    from isanet.data.transforms import normalize
    from isanet.notebook.model_menu import teaching_choice
    from isanet.notebook.teaching import teaching_test_settings

    pictures = teaching_pictures(max(count, first + 1))
    pictures.insert(0, pictures.pop(first))
    teaching, settings = teaching_choice(), teaching_test_settings()
    model = teaching.load().eval()
    if query is None:  # open where the relay is
        opened = capture(model, normalize(pictures[0].image, settings.mean, settings.std)[None])
        feature_label = labels_at_features(pictures[0].label, opened.feature_size, opened.align_corners)
        strongest = strongest_relay_pixel(relay_weight_map(opened.isa, feature_label, [BEACON], TEAM_CLASSES))
        query = None if strongest is None else tuple(round(value) for value in opened.to_image(*strongest))
    return save_live_page(path, model, pictures, teaching.label, teaching.note, mean=settings.mean, std=settings.std,
                          query=query)
