"""Interactive pieces for the teaching notebooks, and how they draw: the partition explorer here, the
pixel-picking attention explorer in :mod:`isanet.notebook.attention_explorer`, set-up helpers in
:mod:`isanet.notebook.session`.

Everything is drawn on the kernel side (matplotlib's Agg into PNG bytes, shown by ``ipywidgets.Image``), and
clicks come back through ``ipyevents``, so the widgets behave the same in JupyterLab, VS Code and a headless
``nbmake`` run, and what a person sees is exactly what the Python state says. The heavy parts live elsewhere
in the package: partitions in :mod:`isanet.models.isa`, plots in :mod:`isanet.notebook.plots`.
"""

from __future__ import annotations

import io
import os

from matplotlib.figure import Figure

from isanet.models.isa import Partition
from isanet.notebook.explorer_pages import save_partition_page
from isanet.notebook.partition_plots import complexity_html, plot_partition, plot_two_hop, two_hop_path


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes (Agg; no pyplot state, works headless)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


class PartitionExplorer:
    """Sliders for the map size, ``down_factor`` and two pixels; shows the long-range groups, the short-range
    blocks and the two-hop path between the pixels, with the complexity formulas filled in.

    State: ``partition``, ``source``, ``target`` (unpadded map pixels); ``update()`` redraws.
    """

    def __init__(self, height: int = 13, width: int = 18, down_factor: int = 4,
                 source: tuple[int, int] = (0, 0), target: tuple[int, int] | None = None, max_size: int = 40,
                 max_down_factor: int = 12, dpi: int = 80):
        import ipywidgets as widgets

        self.dpi = dpi
        style = {"description_width": "110px"}
        layout = widgets.Layout(width="360px")
        self.height_slider = widgets.IntSlider(height, 1, max_size, description="map height h", style=style,
                                               layout=layout)
        self.width_slider = widgets.IntSlider(width, 1, max_size, description="map width w", style=style,
                                              layout=layout)
        self.factor_slider = widgets.IntSlider(down_factor, 1, max_down_factor, description="down_factor",
                                               style=style, layout=layout)
        target = target if target is not None else (height - 1, width - 1)
        self.source_row = widgets.IntSlider(source[0], 0, height - 1, description="source row", style=style,
                                            layout=layout)
        self.source_col = widgets.IntSlider(source[1], 0, width - 1, description="source col", style=style,
                                            layout=layout)
        self.target_row = widgets.IntSlider(target[0], 0, height - 1, description="target row", style=style,
                                            layout=layout)
        self.target_col = widgets.IntSlider(target[1], 0, width - 1, description="target col", style=style,
                                            layout=layout)
        self.picture = widgets.Image(format="png")
        self.picture.add_class("isanet-partition")
        self.formulas = widgets.HTML()
        self.path_label = widgets.HTML()
        for slider in (self.height_slider, self.width_slider, self.factor_slider, self.source_row,
                       self.source_col, self.target_row, self.target_col):
            slider.observe(self._changed, names="value")
        controls = widgets.VBox([self.height_slider, self.width_slider, self.factor_slider, self.source_row,
                                 self.source_col, self.target_row, self.target_col, self.path_label])
        self.widget = widgets.VBox([widgets.HBox([controls, self.formulas]), self.picture])
        self._busy = False
        self.update()

    @property
    def partition(self) -> Partition:
        factor = self.factor_slider.value
        return Partition(self.height_slider.value, self.width_slider.value, factor, factor)

    @property
    def source(self) -> tuple[int, int]:
        return self.source_row.value, self.source_col.value

    @property
    def target(self) -> tuple[int, int]:
        return self.target_row.value, self.target_col.value

    def _changed(self, _change) -> None:
        if not self._busy:
            self.update()

    def update(self) -> None:
        """Clamp the pixel sliders to the map, then redraw the picture, the path and the formulas."""
        self._busy = True
        try:
            for slider, size in ((self.source_row, self.height_slider.value),
                                 (self.target_row, self.height_slider.value),
                                 (self.source_col, self.width_slider.value),
                                 (self.target_col, self.width_slider.value)):
                slider.max = size - 1
        finally:
            self._busy = False
        self.picture.value = figure_png(self.figure(), self.dpi)
        self.formulas.value = complexity_html(self.partition)
        p = self.partition
        source, via, target = two_hop_path(p, self.source, self.target)
        unpad = lambda yx: (yx[0] - p.pad_top, yx[1] - p.pad_left)
        self.path_label.value = (f"<span class='isanet-path'>source {self.source} → via {unpad(via)} "
                                 f"(long range) → target {self.target} (short range)</span>")

    def save_html(self, path: str | os.PathLike) -> int:
        """Write the explorer, in its current state, as one standalone page that answers its sliders and clicks
        without a kernel (:mod:`isanet.notebook.explorer_pages`); returns the file's size in bytes."""
        return save_partition_page(path, height=self.height_slider.value, width=self.width_slider.value,
                                   down_factor=self.factor_slider.value, source=self.source, target=self.target,
                                   max_size=self.height_slider.max, max_down_factor=self.factor_slider.max)

    def figure(self) -> Figure:
        """Long-range groups and short-range blocks around the source, and the two-hop path."""
        figure = Figure(figsize=(13, 4.6), layout="constrained")
        axes = figure.subplots(1, 3)
        plot_partition(self.partition, self.source, axes=axes[:2])
        plot_two_hop(self.partition, self.source, self.target, ax=axes[2])
        return figure

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
