"""What the attention explorer knows, apart from its widgets: the image, the model menu, one capture per model
run (kept, so going back to a model is instant), the current model and the query pixel.

:class:`ExplorerState` runs models and moves the query, checked, in image or feature coordinates; the widget
class :class:`isanet.notebook.attention_explorer.AttentionExplorer` builds on it. When the explorer itself moves
a widget to match the state (the sliders to a clicked pixel, the menu back after a model failed to load), the
widget's observer must not take that for a person's move: :meth:`ExplorerState.quiet` marks those changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from isanet.analysis.probe import AttentionCapture, PixelAttention, capture
from isanet.data.datasets import as_rgb_uint8
from isanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize
from isanet.notebook.model_menu import ModelChoice
from isanet.runtime import resolve_precision


class ExplorerState:
    """The explorer's state: ``image`` (``H x W x 3`` uint8), ``choices`` (the model menu), ``captures`` (model
    index -> its :class:`~isanet.analysis.probe.AttentionCapture`), ``current`` and ``capture`` (the model
    shown), ``selected_pixel`` (image row, col), ``feature_pixel``, ``result`` (the
    :class:`~isanet.analysis.probe.PixelAttention` of the query) and ``history`` (every pixel selected)."""

    def __init__(self, image: np.ndarray, choices: Sequence[ModelChoice], *, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, device: str | torch.device = "cpu",
                 pixel: tuple[int, int] | None = None, precision: str = "fp32", optimize: bool = False):
        self.image = as_rgb_uint8(image)
        if not choices:
            raise ValueError("choices: no models to choose from")
        self.choices = list(choices)
        self.mean, self.std, self.device = tuple(mean), tuple(std), torch.device(device)
        self.precision = resolve_precision(precision, self.device)  # the backbone's; warns once, here
        self.optimize = optimize  # the backbone compiled (capture's optimize): pays only for large pictures
        height, width = self.image_size
        self.captures: dict[int, AttentionCapture] = {}
        self.current = 0
        self.capture: AttentionCapture | None = None
        self.result: PixelAttention | None = None
        self.selected_pixel: tuple[int, int] = pixel or (height // 2, width // 2)
        self.feature_pixel: tuple[int, int] | None = None
        self.history: list[tuple[int, int]] = []
        self._quiet = False

    @property
    def image_size(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]

    @property
    def model_label(self) -> str:
        return self.choices[self.current].label

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Widget changes made inside are the explorer's own, not a person's: observers check :attr:`quieted`
        and ignore them (nested uses keep the outer one's setting)."""
        outer, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = outer

    @property
    def quieted(self) -> bool:
        return self._quiet

    def run_model(self, index: int) -> AttentionCapture:
        """The capture of menu entry ``index``: its model run once on the image with the attention kept (then
        cached). A model that fails to build or run raises, and nothing is cached."""
        if index not in self.captures:
            model = self.choices[index].load().to(self.device).eval()
            batch = normalize(self.image, self.mean, self.std)[None].to(self.device)
            self.captures[index] = capture(model, batch, precision=self.precision, optimize=self.optimize)
        return self.captures[index]

    def use_model(self, index: int) -> None:
        """Make menu entry ``index`` the model shown (running it if it has not run yet)."""
        self.capture, self.current = self.run_model(index), index

    def select(self, row: float, col: float, coords: str = "image", clamp: bool = False) -> tuple[int, int]:
        """Make ``(row, col)`` the query pixel (``coords`` "image" or "feature"); returns the image pixel
        selected. A pixel outside the picture is an error (``clamp`` moves it to the nearest edge instead, as
        arrow keys at the border do)."""
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
        return image_pixel

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
