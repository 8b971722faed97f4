"""The attention explorer: click a pixel of an image and see its long-range, short-range, composed two-hop and
dense attention, for random, sample-trained or zoo weights.

Drawn like :mod:`isanet.notebook.partition_explorer` (PNG bytes from the kernel, clicks through ``ipyevents``);
``explorer.selected_pixel`` is what the person sees. Attention capture lives in :mod:`isanet.analysis.probe`.

Coordinates are ``(row, col)`` everywhere. *Image* pixels index the picture shown; *feature* pixels index the
1/8-resolution map the attention runs on (:meth:`isanet.analysis.probe.AttentionCapture.to_feature` maps one to the
other with the resize the model itself uses).
"""

from __future__ import annotations

import html
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from torch import nn

from isanet.data.datasets import as_rgb_uint8
from isanet.io.checkpoint import load_model
from isanet.models.interlaced import long_range_group_ids
from isanet.notebook.partition_explorer import figure_png
from isanet.notebook.plots import IMAGENET_MEAN, IMAGENET_STD
from isanet.notebook.session import find_zoo_checkpoints, resolve_path
from isanet.runtime import resolve_precision


def array_png(image: np.ndarray) -> bytes:
    """An ``H x W x 3`` uint8 array as PNG bytes."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(image)).save(buffer, format="png")
    return buffer.getvalue()


@dataclass
class ModelChoice:
    """One entry of the explorer's model menu: a label and how to build the model (lazily)."""

    label: str
    load: Callable[[], nn.Module]
    kind: str = "random"  # "random", "sample" or "zoo"
    path: Path | None = None


def model_choices(model_name: str, checkpoint: str | os.PathLike | None = None,
                  checkpoint_dir: str | os.PathLike | None = None,
                  sample_checkpoint: str | os.PathLike | None = None, seed: int = 0) -> list[ModelChoice]:
    """The models the explorer can show: random weights of ``model_name``'s architecture; a sample-trained
    checkpoint if that file exists; ``checkpoint`` if given; every zoo checkpoint found in ``checkpoint_dir``
    (default ``data/checkpoints``). Models are built only when picked."""
    from isanet.models.zoo import build_model, get_entry

    entry = get_entry(model_name)

    def random_model() -> nn.Module:
        torch.manual_seed(seed)
        return build_model(entry.name)

    def from_file(path: Path, name: str | None = None) -> Callable[[], nn.Module]:
        return lambda: load_model(path, name)

    choices = [ModelChoice(f"random weights ({entry.name}, seed {seed})", random_model, "random")]
    sample = resolve_path(sample_checkpoint)
    if sample is not None and sample.is_file():
        choices.append(ModelChoice(f"sample-trained: {sample.name}", from_file(sample), "sample", sample))
    chosen = resolve_path(checkpoint)
    if chosen is not None:
        if not chosen.is_file():
            raise FileNotFoundError(f"CHECKPOINT {chosen} does not exist (download one with `isanet download`)")
        choices.append(ModelChoice(f"checkpoint: {chosen.name}", from_file(chosen), "zoo", chosen))
    for name, path in find_zoo_checkpoints(checkpoint_dir).items():
        if chosen is None or path.resolve() != chosen.resolve():
            choices.append(ModelChoice(f"zoo: {name}", from_file(path, name), "zoo", path))
    return choices


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


class AttentionExplorer:
    """Click a pixel of an image and see its ISA attention: long range, short range, the composed two-hop map
    and the dense map, side by side over the image.

    * click the picture (or hover it and use the arrow keys), or move the *row*/*col* sliders (feature pixels);
    * pick the model in the menu (random weights, a sample-trained checkpoint, zoo checkpoints found);
    * ``selected_pixel`` (image row, col), ``feature_pixel``, ``result`` (the
      :class:`isanet.analysis.probe.PixelAttention`) and ``capture`` hold the state; ``select(row, col)`` picks
      from code.

    ``image`` is an ``H x W x 3`` RGB picture (uint8, float in [0, 1], or an image file), fed to the model as is
    (normalised with ``mean``/``std``);
    keep it small on a CPU (a 256 x 512 picture takes a few seconds through an R-50-D8). ``precision="bf16"``
    runs the backbone about twice as fast on CPUs with native bf16; the attention shown is computed in fp32.
    """

    def __init__(self, image: np.ndarray, choices: Sequence[ModelChoice], *, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, device: str | torch.device = "cpu",
                 pixel: tuple[int, int] | None = None, scale: int | None = None, resolution: str = "feature",
                 dpi: int = 72, precision: str = "fp32"):
        import ipywidgets as widgets
        from ipyevents import Event

        self.image = as_rgb_uint8(image)
        if not choices:
            raise ValueError("no models to choose from")
        self.choices = list(choices)
        self.mean, self.std, self.device, self.dpi = tuple(mean), tuple(std), torch.device(device), dpi
        self.precision = resolve_precision(precision, self.device)  # the backbone's; warns once, here
        height, width = self.image.shape[:2]
        self.scale = scale or max(1, min(4, round(480 / max(height, width))))
        self.captures: dict[int, object] = {}
        self.capture = None
        self.result = None
        self.selected_pixel: tuple[int, int] = pixel or (height // 2, width // 2)
        self.feature_pixel: tuple[int, int] | None = None
        self.history: list[tuple[int, int]] = []
        self._syncing = False
        self._current = 0

        self.model_menu = widgets.Dropdown(options=[(c.label, i) for i, c in enumerate(self.choices)], value=0,
                                           description="model", layout=widgets.Layout(width="640px"),
                                           style={"description_width": "50px"})
        self.resolution_buttons = widgets.ToggleButtons(
            options=[("feature cells", "feature"), ("bilinear, as the logits", "image")], value=resolution,
            description="maps", style={"description_width": "50px", "button_width": "170px"})
        self.row_slider = widgets.IntSlider(0, 0, 1, description="row", continuous_update=False,
                                            style={"description_width": "50px"})
        self.col_slider = widgets.IntSlider(0, 0, 1, description="col", continuous_update=False,
                                            style={"description_width": "50px"})
        self.label = widgets.HTML()
        self.label.add_class("isanet-pixel-label")
        self.status = widgets.HTML()
        self.status.add_class("isanet-status")
        self.picker = widgets.Image(format="png", layout=widgets.Layout(
            width=f"{width * self.scale}px", height=f"{height * self.scale}px", padding="0", border="0",
            object_fit="fill"))
        self.picker.add_class("isanet-picker")
        self.maps = widgets.Image(format="png")
        self.maps.add_class("isanet-maps")
        self.events = Event(source=self.picker, watched_events=["click", "keydown"], prevent_default_action=True)
        self.events.on_dom_event(self._on_event)
        self.model_menu.observe(self._on_menu, names="value")
        self.resolution_buttons.observe(lambda change: self._draw_maps(), names="value")
        self.row_slider.observe(self._on_slider, names="value")
        self.col_slider.observe(self._on_slider, names="value")
        help_text = widgets.HTML("<small>Click the picture, or hover it and press the arrow keys, or use the "
                                 "sliders (feature pixels).<br>Orange: the pixel's 8x8-cell block (short range); "
                                 "blue dots: its long-range group.</small>")
        side = widgets.VBox([self.label, self.row_slider, self.col_slider, help_text, self.status],
                            layout=widgets.Layout(margin="0 0 0 12px"))
        self.widget = widgets.VBox([widgets.HBox([self.model_menu]), widgets.HBox([self.picker, side]),
                                    self.resolution_buttons, self.maps])
        self.widget.add_class("isanet-attention-explorer")
        self.set_model(0)

    # ------------------------------------------------------------------------------------------ state

    @property
    def model_label(self) -> str:
        return self.choices[self.model_menu.value].label

    @property
    def image_size(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]

    def set_model(self, index: int) -> None:
        """Run the chosen model once on the image with its attention kept (cached), then redraw."""
        from isanet.analysis.probe import capture
        from isanet.data.transforms import normalize

        if index not in self.captures:
            choice = self.choices[index]
            self.status.value = f"<i>running {html.escape(choice.label)} ...</i>"
            try:
                model = choice.load().to(self.device).eval()
                batch = normalize(self.image, self.mean, self.std)[None].to(self.device)
                self.captures[index] = capture(model, batch, precision=self.precision)
            except Exception as error:
                self.status.value = (f"<span style='color:#b00'>could not use {html.escape(choice.label)}: "
                                     f"{html.escape(str(error))}</span>")
                if self.capture is None:
                    raise
                self._syncing = True
                try:
                    self.model_menu.value = self._current
                finally:
                    self._syncing = False
                return
            del model
        if self.model_menu.value != index:
            self._syncing = True
            try:
                self.model_menu.value = index
            finally:
                self._syncing = False
        self.capture, self._current = self.captures[index], index
        h, w = self.capture.feature_size
        p = self.capture.isa.partition if self.capture.isa is not None else None
        self._syncing = True
        try:
            self.row_slider.max, self.col_slider.max = h - 1, w - 1
        finally:
            self._syncing = False
        blocks = f", {p.glb_h}x{p.glb_w} blocks of {p.loc_h}x{p.loc_w}" if p else ""
        self.status.value = (f"<small>{html.escape(self.model_label)}<br>feature map {h}x{w}{blocks}</small>")
        self.select(*self.selected_pixel)

    def select(self, row: float, col: float, coords: str = "image", clamp: bool = False) -> tuple[int, int]:
        """Make ``(row, col)`` the query pixel (``coords`` "image" or "feature") and redraw; returns the image
        pixel selected. A pixel outside the picture is an error (``clamp`` moves it to the nearest edge
        instead, as arrow keys at the border do)."""
        height, width = self.image_size
        limits = {"image": (height, width), "feature": self.capture.feature_size if self.capture else None}
        if coords in limits and not clamp and limits[coords] is not None:
            bound_h, bound_w = limits[coords]
            if not (0 <= row < bound_h and 0 <= col < bound_w):
                raise ValueError(f"select({row}, {col}): outside the {coords} ({bound_h} x {bound_w}); rows are 0 "
                                 f"to {bound_h - 1}, columns 0 to {bound_w - 1}")
        if coords == "image":
            image_pixel = (min(max(int(row), 0), height - 1), min(max(int(col), 0), width - 1))
            feature = self.capture.to_feature(*image_pixel)
        elif coords == "feature":
            fh, fw = self.capture.feature_size
            feature = (min(max(int(row), 0), fh - 1), min(max(int(col), 0), fw - 1))
            y, x = self.capture.to_image(*feature)
            image_pixel = (min(max(int(round(y)), 0), height - 1), min(max(int(round(x)), 0), width - 1))
        else:
            raise ValueError(f"coords must be 'image' or 'feature', got {coords!r}")
        self.selected_pixel, self.feature_pixel = image_pixel, feature
        self.history.append(image_pixel)
        self.result = self.capture.pixel(*feature)
        self._syncing = True
        try:
            self.row_slider.value, self.col_slider.value = feature
        finally:
            self._syncing = False
        self._draw()
        return image_pixel

    # ----------------------------------------------------------------------------------------- events

    def _on_event(self, event: dict) -> None:
        try:
            if event.get("type") == "click":
                self.select(*self.event_pixel(event))
            elif event.get("type") == "keydown":
                steps = {"ArrowUp": (-1, 0), "ArrowDown": (1, 0), "ArrowLeft": (0, -1), "ArrowRight": (0, 1)}
                if event.get("key") in steps:
                    dy, dx = steps[event["key"]]
                    self.select(self.feature_pixel[0] + dy, self.feature_pixel[1] + dx, coords="feature", clamp=True)
        except Exception as error:
            self.status.value = f"<span style='color:#b00'>{html.escape(repr(error))}</span>"

    def event_pixel(self, event: dict) -> tuple[int, int]:
        """Image pixel of an ipyevents click on the picture. ipyevents gives ``dataX``/``dataY`` in the PNG's own
        pixels (``scale`` per image pixel); fall back to the position inside the bounding box."""
        height, width = self.image_size
        if "dataX" in event and "dataY" in event:
            row, col = event["dataY"] / self.scale, event["dataX"] / self.scale
        else:
            row = event["relativeY"] / event["boundingRectHeight"] * height
            col = event["relativeX"] / event["boundingRectWidth"] * width
        return min(max(int(math.floor(row)), 0), height - 1), min(max(int(math.floor(col)), 0), width - 1)

    def _on_menu(self, change) -> None:
        if not self._syncing:
            self.set_model(change["new"])

    def _on_slider(self, _change) -> None:
        if not self._syncing:
            self.select(self.row_slider.value, self.col_slider.value, coords="feature")

    # ---------------------------------------------------------------------------------------- drawing

    def pixel_text(self) -> str:
        """The label under the model menu, e.g. ``pixel (120, 64) in the 256×512 image → feature (15, 8)``."""
        (row, col), (frow, fcol) = self.selected_pixel, self.feature_pixel
        height, width = self.image_size
        fh, fw = self.capture.feature_size
        text = f"pixel ({row}, {col}) in the {height}×{width} image → feature ({frow}, {fcol}) of {fh}×{fw}"
        p = self.result.partition
        if p is not None:
            y, x = frow + p.pad_top, fcol + p.pad_left
            text += f"; block {p.block(y, x)}, in-block offset {p.offset(y, x)}"
        return text

    def _draw(self) -> None:
        self.label.value = f"<b class='isanet-pixel-text'>{html.escape(self.pixel_text())}</b>"
        self.picker.value = array_png(self._picker_array())
        self._draw_maps()

    def _picker_array(self) -> np.ndarray:
        p = self.result.partition
        height, width = self.image_size
        fh, fw = self.capture.feature_size
        stride_y, stride_x = height / fh, width / fw
        block_box, points = None, []
        if p is not None:
            y, x = self.feature_pixel[0] + p.pad_top, self.feature_pixel[1] + p.pad_left
            block_y, block_x = p.block_origin(y, x)
            top, left = block_y - p.pad_top, block_x - p.pad_left
            block_box = (top * stride_y, left * stride_x, (top + p.loc_h) * stride_y, (left + p.loc_w) * stride_x)
            long_ids = long_range_group_ids(p).numpy()
            for gy, gx in zip(*np.nonzero(long_ids == long_ids[y, x])):
                fy, fx = gy - p.pad_top, gx - p.pad_left
                if 0 <= fy < fh and 0 <= fx < fw and (fy, fx) != tuple(self.feature_pixel):
                    points.append(self.capture.to_image(fy, fx))
        return draw_picker(self.image, self.selected_pixel, self.scale, block_box, points)

    def _draw_maps(self) -> None:
        if self.result is None:
            return
        figure = plot_attention_panels(self.result, self.image, self.selected_pixel,
                                       resolution=self.resolution_buttons.value)
        self.maps.value = figure_png(figure, self.dpi)

    def save_html(self, path: str | os.PathLike, note: str | None = None):
        """Write what the explorer shows for the current model as one standalone HTML page, so it can be shared
        and opened without a kernel (see :mod:`isanet.notebook.explorer_html`). Returns the page's
        :class:`~isanet.notebook.explorer_html.PageSizes`."""
        from isanet.notebook.explorer_html import save_explorer_html

        choice = self.choices[self._current]
        if note is None:
            note = "RANDOM WEIGHTS: the maps show the pattern ISA allows, not what a trained model looks at." \
                if choice.kind == "random" else ""
        return save_explorer_html(self.capture, self.image, path, choice.label, note, self.selected_pixel)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
