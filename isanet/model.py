"""``ISANet``: ResNet-V1c-D8 backbone + ISA decode head + FCN auxiliary head, mmseg's ``EncoderDecoder``.

``model(x)`` takes a normalised ``N x 3 x H x W`` batch and returns ``N x K x H x W`` logits, bilinearly
resized from the 1/8-resolution head output with the config's ``align_corners``. In training mode it returns
``(logits, aux_logits)`` so that the trainer can add the auxiliary loss (weight 0.4 in every published config).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from isanet.attention import DenseHead
from isanet.backbone import ResNetV1c
from isanet.heads import FCNHead
from isanet.isa import ISAHead

HEADS = {"isa": ISAHead, "dense": DenseHead}


class ISANet(nn.Module):
    """The published ISANet, parameter for parameter.

    ``head="dense"`` swaps the ISA head for the dense baseline with the same projections, for comparisons;
    ``kernel`` ("matmul" or "sdpa") picks the attention kernel of either head.
    """

    def __init__(self, depth: int = 50, num_classes: int = 19, align_corners: bool = False,
                 down_factor: tuple[int, int] = (8, 8), channels: int = 512, isa_channels: int = 256,
                 aux_channels: int = 256, head: str = "isa", kernel: str = "matmul", auxiliary: bool = True):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {sorted(HEADS)}, got {head!r}")
        self.align_corners = align_corners
        self.backbone = ResNetV1c(depth)
        stage_channels = self.backbone.stage_channels
        head_kwargs = dict(in_channels=stage_channels[3], channels=channels, isa_channels=isa_channels,
                           num_classes=num_classes, kernel=kernel)
        if head == "isa":
            head_kwargs["down_factor"] = down_factor
        self.decode_head = HEADS[head](**head_kwargs)
        self.auxiliary_head = FCNHead(stage_channels[2], aux_channels, num_classes) if auxiliary else None

    @property
    def num_classes(self) -> int:
        return self.decode_head.num_classes

    def reset_classifier(self, num_classes: int) -> None:
        """Give both heads fresh classifiers for a new label set (the rest of the weights are kept)."""
        self.decode_head.reset_classifier(num_classes)
        if self.auxiliary_head is not None:
            self.auxiliary_head.reset_classifier(num_classes)

    def upsample(self, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a normalised N x 3 x H x W batch, got shape {tuple(x.shape)}")
        size = x.shape[2:]
        features = self.backbone(x)
        logits = self.upsample(self.decode_head(features), size)
        if self.training and self.auxiliary_head is not None:
            return logits, self.upsample(self.auxiliary_head(features), size)
        return logits
