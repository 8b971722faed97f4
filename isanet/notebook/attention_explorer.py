"""The attention explorer: click a pixel of an image and see its long-range, short-range, composed two-hop and
dense attention, for the teaching model, random or zoo weights.

Drawn like :mod:`isanet.notebook.partition_explorer` (PNG bytes from the kernel, clicks through ``ipyevents``);
``explorer.selected_pixel`` is what the person sees. This file is the widgets and their events only: the menu's
entries come from :mod:`isanet.notebook.model_menu`, the state (captures, the query pixel, ``quiet()``) from
:mod:`isanet.notebook.explorer_state`, the pictures from :mod:`isanet.notebook.attention_panels`, the standalone
page from :mod:`isanet.notebook.explorer_html`; attention capture lives in :mod:`isanet.analysis.probe`.

Coordinates are ``(row, col)`` everywhere. *Image* pixels index the picture shown; *feature* pixels index the
1/8-resolution map the attention runs on (:meth:`isanet.analysis.probe.AttentionCapture.to_feature` maps one to the
other with the resize the model itself uses).
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from isanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from isanet.notebook.attention_panels import array_png, draw_picker, picker_marks, plot_attention_panels
from isanet.notebook.explorer_html import PageSizes, save_explorer_html
from isanet.notebook.explorer_state import ExplorerState
from isanet.notebook.model_menu import ModelChoice
from isanet.notebook.plots import figure_png


class AttentionExplorer(ExplorerState):
    """Click a pixel of an image and see its ISA attention: long range, short range, the composed two-hop map
    and the dense map, side by side over the image.

    * click the picture (or hover it and use the arrow keys), or move the *row*/*col* sliders (feature pixels);
    * pick the model in the menu (the teaching model, random weights, zoo checkpoints found);
    * ``selected_pixel`` (image row, col), ``feature_pixel``, ``result`` (the
      :class:`isanet.analysis.probe.PixelAttention`) and ``capture`` hold the state (see
      :class:`~isanet.notebook.explorer_state.ExplorerState`); ``select(row, col)`` picks from code.

    ``image`` is an ``H x W x 3`` RGB picture (uint8, float in [0, 1], or an image file), fed to the model as is
    (normalised with ``mean``/``std``);
    keep it small on a CPU (a 256 x 512 picture takes a few seconds through an R-50-D8). ``precision="bf16"``
    runs the backbone in bf16 (faster where the CPU's bf16 outruns its fp32: 2.3x on an AMD EPYC, slower on a
    Xeon without AMX); the attention shown is computed in fp32. ``optimize=True`` compiles the backbone
    (:func:`isanet.analysis.probe.capture`): worth it only for large pictures, each model compiles first.
    """

    def __init__(self, image: np.ndarray, choices: Sequence[ModelChoice], *, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, device: str | torch.device = "cpu",
                 pixel: tuple[int, int] | None = None, scale: int | None = None, resolution: str = "feature",
                 dpi: int = 72, precision: str = "fp32", optimize: bool = False):
        import ipywidgets as widgets
        from ipyevents import Event

        super().__init__(image, choices, mean=mean, std=std, device=device, pixel=pixel, precision=precision,
                         optimize=optimize)
        self.dpi = dpi
        height, width = self.image_size
        self.scale = scale or max(1, min(4, round(480 / max(height, width))))

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

    def set_model(self, index: int) -> None:
        """Show menu entry ``index`` (run once, then cached); a model that fails leaves the one shown before,
        with the reason in the status line (the first model failing is an error)."""
        if index not in self.captures:
            choice = self.choices[index]
            self.status.value = f"<i>running {html.escape(choice.label)} ...</i>"
            try:
                self.run_model(index)
            except Exception as error:
                self.status.value = (f"<span style='color:#b00'>could not use {html.escape(choice.label)}: "
                                     f"{html.escape(str(error))}</span>")
                if self.capture is None:
                    raise
                with self.quiet():
                    self.model_menu.value = self.current
                return
        self.use_model(index)
        h, w = self.capture.feature_size
        with self.quiet():
            self.model_menu.value = index
            self.row_slider.max, self.col_slider.max = h - 1, w - 1
        p = self.capture.isa.partition if self.capture.isa is not None else None
        blocks = f", {p.glb_h}x{p.glb_w} blocks of {p.loc_h}x{p.loc_w}" if p else ""
        self.status.value = (f"<small>{html.escape(self.model_label)}<br>feature map {h}x{w}{blocks}</small>")
        self.select(*self.selected_pixel)

    def select(self, row: float, col: float, coords: str = "image", clamp: bool = False) -> tuple[int, int]:
        """:meth:`ExplorerState.select`, then the sliders moved to the pixel and everything redrawn."""
        image_pixel = super().select(row, col, coords, clamp)
        with self.quiet():
            self.row_slider.value, self.col_slider.value = self.feature_pixel
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
        if not self.quieted:
            self.set_model(change["new"])

    def _on_slider(self, _change) -> None:
        if not self.quieted:
            self.select(self.row_slider.value, self.col_slider.value, coords="feature")

    # ---------------------------------------------------------------------------------------- drawing

    def _draw(self) -> None:
        self.label.value = f"<b class='isanet-pixel-text'>{html.escape(self.pixel_text())}</b>"
        block_box, points = picker_marks(self.capture, self.feature_pixel, self.image_size)
        self.picker.value = array_png(draw_picker(self.image, self.selected_pixel, self.scale, block_box, points))
        self._draw_maps()

    def _draw_maps(self) -> None:
        if self.result is None:
            return
        figure = plot_attention_panels(self.result, self.image, self.selected_pixel,
                                       resolution=self.resolution_buttons.value)
        self.maps.value = figure_png(figure, self.dpi)

    def save_html(self, path: str | os.PathLike, note: str | None = None) -> PageSizes:
        """Write what the explorer shows for the current model as one standalone HTML page, so it can be shared
        and opened without a kernel (see :mod:`isanet.notebook.explorer_html`). Returns the page's
        :class:`~isanet.notebook.explorer_html.PageSizes`."""
        choice = self.choices[self.current]
        if note is None:
            note = "RANDOM WEIGHTS: the maps show the pattern ISA allows, not what a trained model looks at." \
                if choice.kind == "random" else choice.note
        return save_explorer_html(self.capture, self.image, path, choice.label, note, self.selected_pixel)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
