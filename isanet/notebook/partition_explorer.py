"""The partition explorer of notebook 01: sliders for the map size and ``down_factor``, a click moves the source or
the target, and the long-range group, the block and the two-hop path between them are drawn, with the complexity
formulas filled in.

It is an anywidget (``anywidget.AnyWidget``): its view is one ES module, ``templates/partition.mjs``, which JupyterLab,
VS Code, Colab and the standalone page (:func:`isanet.notebook.explorer_pages.save_partition_page`, the site's page of
notebook 01) all run, so there is one drawing, not one per place. The model's traits are the state: the view's
sliders and clicks set them, Python reads them (``explorer.partition``, ``explorer.source``), and setting them from
Python redraws the view. The view computes the geometry from the padding table of the payload
(:func:`isanet.notebook.explorer_pages.axis_table`, what :class:`isanet.models.isa.Partition` says), so it cannot
disagree with the package.
"""

from __future__ import annotations

import os

import anywidget
import traitlets

from isanet.models.isa import Partition
from isanet.notebook.explorer_html import TEMPLATES
from isanet.notebook.explorer_pages import PARTITION_MODULE, partition_payload, save_partition_page
from isanet.notebook.partition_plots import two_hop_path


class PartitionExplorer(anywidget.AnyWidget):
    """The partition explorer widget. ``height``, ``width``, ``down_factor``, ``source`` and ``target`` (unpadded map
    pixels, ``[row, col]``) are its synced state; the pixels are clamped into the map when it shrinks, as in the
    view. ``max_size`` and ``max_down_factor`` bound the sliders (and the padding table the view gets)."""

    _esm = TEMPLATES / PARTITION_MODULE
    payload = traitlets.Dict().tag(sync=True)  # the sliders' bounds and the padding table (never changes)
    height = traitlets.Int().tag(sync=True)
    width = traitlets.Int().tag(sync=True)
    down_factor = traitlets.Int().tag(sync=True)
    source = traitlets.List(traitlets.Int(), minlen=2, maxlen=2).tag(sync=True)
    target = traitlets.List(traitlets.Int(), minlen=2, maxlen=2).tag(sync=True)

    def __init__(self, height: int = 13, width: int = 18, down_factor: int = 4, source: tuple[int, int] = (0, 0),
                 target: tuple[int, int] | None = None, max_size: int = 40, max_down_factor: int = 12):
        state = partition_payload(height, width, down_factor, source, target, max_size, max_down_factor)
        fixed = {key: state[key] for key in ("title", "max_size", "max_down_factor", "axes")}
        super().__init__(payload=fixed, height=height, width=width, down_factor=down_factor,
                         source=list(state["source"]), target=list(state["target"]))

    @traitlets.validate("height", "width")
    def _side(self, proposal) -> int:
        return min(max(int(proposal["value"]), 1), self.payload["max_size"])

    @traitlets.validate("down_factor")
    def _factor(self, proposal) -> int:
        return min(max(int(proposal["value"]), 1), self.payload["max_down_factor"])

    @traitlets.observe("height", "width")
    def _clamp_pixels(self, _change) -> None:
        """Keep the source and target inside a map that shrank (the view does the same)."""
        for name in ("source", "target"):
            row, col = getattr(self, name)
            inside = [min(row, self.height - 1), min(col, self.width - 1)]
            if inside != [row, col]:
                setattr(self, name, inside)

    @property
    def partition(self) -> Partition:
        return Partition(self.height, self.width, self.down_factor, self.down_factor)

    def path_text(self) -> str:
        """The two-hop path as the view prints it (unpadded coordinates)."""
        p = self.partition
        _, via, _ = two_hop_path(p, tuple(self.source), tuple(self.target))
        return (f"source {tuple(self.source)} → via {(via[0] - p.pad_top, via[1] - p.pad_left)} (long range) → "
                f"target {tuple(self.target)} (short range)")

    def save_html(self, path: str | os.PathLike) -> int:
        """Write the explorer, in its current state, as one standalone page that answers its sliders and clicks
        without a kernel (the same view, :mod:`isanet.notebook.explorer_pages`); returns the file's size in bytes."""
        return save_partition_page(path, height=self.height, width=self.width, down_factor=self.down_factor,
                                   source=tuple(self.source), target=tuple(self.target),
                                   max_size=self.payload["max_size"], max_down_factor=self.payload["max_down_factor"])
