"""``ISANet``: ResNet-V1c-D8 backbone + ISA decode head + FCN auxiliary head, mmseg's ``EncoderDecoder``.

*Interlaced Sparse Self-Attention for Semantic Segmentation*, Huang et al., arXiv:1907.12273,
https://arxiv.org/abs/1907.12273. Matches mmsegmentation 1.2.2 ``mmseg/models/segmentors/encoder_decoder.py``
with ``configs/_base_/models/isanet_r50-d8.py``.

``model(x)`` takes a normalised ``N x 3 x H x W`` batch and returns ``N x K x H x W`` logits, bilinearly
resized from the 1/8-resolution head output with the config's ``align_corners``. In training mode it returns
``(logits, aux_logits)`` so that the trainer can add the auxiliary loss (weight 0.4 in every published config).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from isanet.models.backbone import OUTPUT_STRIDE, ResNetV1c
from isanet.models.config import ISANetConfig
from isanet.models.heads import FCNHead, build_head
from isanet.models.isa import ISAWeights


class ModelOutput(NamedTuple):
    """What :meth:`ISANet.forward_with_attention` returns."""

    logits: torch.Tensor  # N x K x H x W, at the input size
    attention: ISAWeights | torch.Tensor  # ISA: both stages' weights; dense: N x hw x hw (1/8 resolution)


class ISANet(nn.Module):
    """The published ISANet, parameter for parameter, built from an :class:`ISANetConfig`.

    ``head`` names the decode head in :data:`isanet.models.heads.HEADS`: ``"dense"`` swaps the ISA
    head for the dense baseline with the same projections, ``"none"`` for the head without a context module
    (the ablation), the others for notebook 06's attentions, for comparisons; ``kernel`` ("matmul", "sdpa"
    or "flex") picks the attention kernel of the head.
    """

    def __init__(self, config: ISANetConfig | None = None):
        super().__init__()
        self.config = config = config or ISANetConfig()
        self.align_corners = config.align_corners
        self.backbone = ResNetV1c(config.depth, stem_channels=config.backbone_width,
                                  base_channels=config.backbone_width)
        stage_channels = self.backbone.stage_channels
        self.decode_head = build_head(config, stage_channels[3])
        self.auxiliary_head = (FCNHead(stage_channels[2], config.aux_channels, config.num_classes)
                               if config.auxiliary else None)

    @property
    def num_classes(self) -> int:
        return self.decode_head.num_classes

    def reset_classifier(self, num_classes: int) -> None:
        """Give both heads fresh classifiers for a new label set (the rest of the weights are kept)."""
        self.decode_head.reset_classifier(num_classes)
        if self.auxiliary_head is not None:
            self.auxiliary_head.reset_classifier(num_classes)
        self.config = self.config.replace(num_classes=num_classes)

    def upsample(self, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=self.align_corners)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a normalised N x 3 x H x W batch, got shape {tuple(x.shape)}")
        if self.training and x.shape[0] == 1 and max(x.shape[2:]) <= OUTPUT_STRIDE:  # else BatchNorm's own error
            raise ValueError(f"a batch of one {x.shape[2]}x{x.shape[3]} picture in training mode is one pixel at 1/"
                             f"{OUTPUT_STRIDE} resolution, and BatchNorm cannot train on one value per channel: give "
                             f"2 or more pictures a batch or pictures over {OUTPUT_STRIDE} pixels a side, or call "
                             "model.eval() to predict")
        return self.backbone(x)  # four stages; stages 3 and 4 at 1/8 resolution

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[2:]
        features = self._features(x)
        logits = self.upsample(self.decode_head(features), size)
        if self.training and self.auxiliary_head is not None:
            return logits, self.upsample(self.auxiliary_head(features), size)
        return logits

    def forward_with_attention(self, x: torch.Tensor) -> ModelOutput:
        """Logits at the input size (explicit attention kernel) and the decode head's attention weights."""
        logits, attention = self.decode_head.forward_with_attention(self._features(x))
        return ModelOutput(self.upsample(logits, x.shape[2:]), attention)
