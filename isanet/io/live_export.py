"""The teaching model for the browser: one ONNX graph from a picture's RGBA bytes to its labels and ISA's weights.

The live page (:mod:`isanet.notebook.live_page`) runs this graph with onnxruntime-web on the picture the learner
edits, so everything between the canvas and what the page draws is inside the graph: the RGBA bytes of a
``<canvas>`` (``1 x H x W x 4`` uint8) are normalised with the model's mean and std, the ISANet runs with its
attention kept (the explicit ``matmul`` kernel, :meth:`isanet.models.heads.ISAHead.forward_with_attention`), and
the graph returns

* ``labels``: ``H x W`` int32, the argmax of the logits resized to the picture (what ``isanet predict`` gives);
* ``long_range``: ``(loc_h*loc_w) x G x G`` float32 with ``G = glb_h*glb_w``, the first step's softmax rows,
  indexed [long-range group (in-block offset), query member (block), key member (block)];
* ``short_range``: ``(glb_h*glb_w) x B x B`` float32 with ``B = loc_h*loc_w``, the second step's, indexed
  [block, query member (in-block offset), key member (in-block offset)].

The layout is :class:`isanet.models.isa.ISAWeights`' without its batch axis; members are numbered row-major on the
*padded* feature map (:mod:`isanet.models.isa`), which the page reads from the ``partition`` of its description.
The picture's size is fixed at export (the teaching model's 160 x 160): one small static graph, no shape symbols.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from isanet.io.atomic import atomic_path
from isanet.io.export import quiet_exporter, require_export
from isanet.models.heads import ISAHead

INPUT_NAME = "rgba"
OUTPUT_NAMES = ("labels", "long_range", "short_range")


class LiveModel(nn.Module):
    """An ISA ``ISANet`` from RGBA bytes to ``(labels, long_range, short_range)`` (see the module docstring)."""

    def __init__(self, model: nn.Module, mean: tuple[float, float, float], std: tuple[float, float, float]):
        super().__init__()
        if not isinstance(model.decode_head, ISAHead):
            raise ValueError(f"the live page shows ISA's two steps: the model's head is "
                             f"{type(model.decode_head).__name__}, not ISAHead")
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, rgba: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rgb = rgba[..., :3].permute(0, 3, 1, 2).float()  # 1 x H x W x 4 -> 1 x 3 x H x W
        image = (rgb - self.mean) / self.std
        features = self.model.backbone(image)
        logits, attention = self.model.decode_head.forward_with_attention(features)
        logits = F.interpolate(logits, size=tuple(rgba.shape[1:3]), mode="bilinear",
                               align_corners=self.model.align_corners)
        labels = logits.argmax(dim=1)[0].to(torch.int32)  # 1 x K x H x W -> H x W
        return labels, attention.long_range[0], attention.short_range[0]


def export_live(model: nn.Module, path: str | os.PathLike, size: tuple[int, int],
                mean: tuple[float, float, float], std: tuple[float, float, float]) -> Path:
    """Write ``model`` as the live page's ONNX graph (:class:`LiveModel`) for ``size`` (height, width) pictures,
    atomically; returns the path."""
    require_export(check=False)
    live = LiveModel(model, mean, std).eval()
    example = torch.zeros(1, *size, 4, dtype=torch.uint8)
    with torch.no_grad(), atomic_path(path, suffix=".onnx") as temporary, quiet_exporter():
        program = torch.onnx.export(live, (example,), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                                    dynamo=True, verbose=False)
        program.save(str(temporary))  # weights inside the one file
    return Path(path)
