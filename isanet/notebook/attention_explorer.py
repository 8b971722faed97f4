"""The attention explorer: click a pixel of an image and see its long-range, short-range, composed two-hop and
dense attention, for the teaching model, random or zoo weights.

The view is one ES module, ``templates/explorer.mjs`` (an anywidget: JupyterLab, VS Code, Colab), the same module
the standalone page runs (:mod:`isanet.notebook.explorer_html`, ``isanet attention``, the site): the kernel runs
the chosen model once, packs its capture into the module's payload (:func:`~isanet.notebook.explorer_html.
build_payload`), and the view computes and draws every map from it, so a click redraws without a round trip. The
query pixel is a synced trait: a click or an arrow key in the view sets it and Python reads it (``selected_pixel``,
``result``); :meth:`AttentionExplorer.select` sets it from Python and the view follows. The model menu asks the
kernel for another model's capture. The state (captures, the query pixel, ``quiet()``) is
:mod:`isanet.notebook.explorer_state`; attention capture lives in :mod:`isanet.analysis.probe`.

Coordinates are ``(row, col)`` everywhere. *Image* pixels index the picture shown; *feature* pixels index the
1/8-resolution map the attention runs on (:meth:`isanet.analysis.probe.AttentionCapture.to_feature` maps one to the
other with the resize the model itself uses).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import anywidget
import numpy as np
import torch
import traitlets

from isanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from isanet.notebook.explorer_html import EXPLORER_MODULE, TEMPLATES, PageSizes, build_payload, save_explorer_html
from isanet.notebook.explorer_state import ExplorerState
from isanet.notebook.model_menu import ModelChoice

RANDOM_NOTE = "RANDOM WEIGHTS: the maps show the pattern ISA allows, not what a trained model looks at."


class AttentionView(anywidget.AnyWidget):
    """The explorer's view (``templates/explorer.mjs``): the capture of the model shown (``payload``), the query
    pixel (image ``[row, col]``), the model menu (``choices``, ``model_index``) and a status line."""

    _esm = TEMPLATES / EXPLORER_MODULE
    payload = traitlets.Dict().tag(sync=True)
    pixel = traitlets.List(traitlets.Int(), minlen=2, maxlen=2).tag(sync=True)
    choices = traitlets.List(traitlets.Unicode()).tag(sync=True)
    model_index = traitlets.Int(0).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)


class AttentionExplorer(ExplorerState):
    """Click a pixel of an image and see its ISA attention: long range, short range, the composed two-hop map
    and the dense map, side by side over the image.

    * click the picture (or hover it and use the arrow keys);
    * pick the model in the menu (the teaching model, random weights, zoo checkpoints found);
    * ``selected_pixel`` (image row, col), ``feature_pixel``, ``result`` (the
      :class:`isanet.analysis.probe.PixelAttention`) and ``capture`` hold the state (see
      :class:`~isanet.notebook.explorer_state.ExplorerState`); ``select(row, col)`` and ``set_model(index)`` act
      from code, and the view follows.

    ``image`` is an ``H x W x 3`` RGB picture (uint8, float in [0, 1], or an image file), fed to the model as is
    (normalised with ``mean``/``std``); keep it small on a CPU (a 256 x 512 picture takes a few seconds through an
    R-50-D8). ``precision="bf16"`` runs the backbone in bf16 (faster where the CPU's bf16 outruns its fp32: 2.3x on
    an AMD EPYC, slower on a Xeon without AMX); the attention shown is computed in fp32. ``optimize=True`` compiles
    the backbone (:func:`isanet.analysis.probe.capture`): worth it only for large pictures, each model compiles first.
    """

    def __init__(self, image: np.ndarray, choices: Sequence[ModelChoice], *, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, device: str | torch.device = "cpu",
                 pixel: tuple[int, int] | None = None, precision: str = "fp32", optimize: bool = False):
        super().__init__(image, choices, mean=mean, std=std, device=device, pixel=pixel, precision=precision,
                         optimize=optimize)
        self.widget = AttentionView(choices=[choice.label for choice in self.choices],
                                    pixel=list(self.selected_pixel))
        self.widget.observe(self._on_pixel, names="pixel")
        self.widget.observe(self._on_menu, names="model_index")
        self.set_model(0)

    def page_note(self, index: int) -> str:
        """What a page of menu entry ``index`` must say beside its maps."""
        choice = self.choices[index]
        return RANDOM_NOTE if choice.kind == "random" else choice.note

    # ------------------------------------------------------------------------------------------ state

    def set_model(self, index: int) -> None:
        """Show menu entry ``index`` (run once, then cached); a model that fails leaves the one shown before,
        with the reason in the status line (the first model failing is an error)."""
        if index not in self.captures:
            choice = self.choices[index]
            self.widget.status = f"running {choice.label} ..."
            try:
                self.run_model(index)
            except Exception as error:
                self.widget.status = f"could not use {choice.label}: {error}"
                if self.capture is None:
                    raise
                with self.quiet():
                    self.widget.model_index = self.current
                return
        self.use_model(index)
        h, w = self.capture.feature_size
        p = self.capture.isa.partition if self.capture.isa is not None else None
        blocks = f", {p.glb_h}x{p.glb_w} blocks of {p.loc_h}x{p.loc_w}" if p else ""
        payload, _ = build_payload(self.capture, self.image, self.model_label, self.page_note(index),
                                   self.selected_pixel)
        with self.quiet():
            self.widget.model_index = index
            self.widget.status = f"feature map {h}x{w}{blocks}"
            self.widget.payload = payload
        self.select(*self.selected_pixel)

    def select(self, row: float, col: float, coords: str = "image", clamp: bool = False) -> tuple[int, int]:
        """:meth:`ExplorerState.select`, then the view moved to the pixel."""
        image_pixel = super().select(row, col, coords, clamp)
        with self.quiet():
            self.widget.pixel = list(image_pixel)
        return image_pixel

    # ----------------------------------------------------------------------------------------- events

    def _on_pixel(self, change) -> None:
        """A click or an arrow key in the view (it has drawn the pixel already): the state follows."""
        if not self.quieted:
            ExplorerState.select(self, *change["new"])

    def _on_menu(self, change) -> None:
        if not self.quieted:
            self.set_model(change["new"])

    def save_html(self, path: str | os.PathLike, note: str | None = None) -> PageSizes:
        """Write what the explorer shows for the current model as one standalone HTML page (the same view, from the
        stored capture), so it can be shared and opened without a kernel (see
        :mod:`isanet.notebook.explorer_html`). Returns the page's :class:`~isanet.notebook.explorer_html.PageSizes`."""
        return save_explorer_html(self.capture, self.image, path, self.model_label,
                                  self.page_note(self.current) if note is None else note, self.selected_pixel)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
