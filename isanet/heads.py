"""Building blocks shared by the heads: conv-BN-ReLU, the classifier, and the FCN auxiliary head.

The module and parameter names (``conv``/``bn``, ``conv_seg``, ``convs.0``) are mmsegmentation's, so that a
published checkpoint's ``decode_head.*`` and ``auxiliary_head.*`` keys land on the right tensors.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBNReLU(nn.Module):
    """Conv (no bias: the BN that follows has one) + BatchNorm + ReLU, mmseg's ``ConvModule`` default."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, padding: int = 0,
                 dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class SegHead(nn.Module):
    """Base of every head: picks one backbone stage, and ends in dropout + a 1x1 classifier.

    ``conv_seg`` is created first so the state-dict order matches mmseg's, where it lives in the base class.
    """

    def __init__(self, channels: int, num_classes: int, in_index: int, dropout_ratio: float = 0.1):
        super().__init__()
        self.in_index = in_index
        self.num_classes = num_classes
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv_seg(self.dropout(features))

    def reset_classifier(self, num_classes: int) -> None:
        """Swap in a fresh classifier for another label set (fine-tuning), initialised as mmseg does."""
        self.conv_seg = nn.Conv2d(self.conv_seg.in_channels, num_classes, kernel_size=1)
        nn.init.normal_(self.conv_seg.weight, std=0.01)
        nn.init.zeros_(self.conv_seg.bias)
        self.num_classes = num_classes


class FCNHead(SegHead):
    """The auxiliary head: one 3x3 conv-BN-ReLU (256 channels) on stage 3, then the classifier.

    Its loss (weight 0.4) gives stage 3 a direct training signal; it is not used at inference.
    """

    def __init__(self, in_channels: int = 1024, channels: int = 256, num_classes: int = 19, in_index: int = 2,
                 dropout_ratio: float = 0.1):
        super().__init__(channels, num_classes, in_index, dropout_ratio)
        self.convs = nn.Sequential(ConvBNReLU(in_channels, channels, kernel_size=3, padding=1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.classify(self.convs(features[self.in_index]))


class ContextHead(SegHead):
    """in_conv (3x3) -> attention context -> out_conv on [context, in_conv output] -> classifier.

    ISA and the dense baseline differ only in how they compute the context, so they share this frame and
    implement :meth:`context`. ``kernel`` picks the attention kernel ("matmul" or "sdpa") for every forward.
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int, in_index: int = 3,
                 dropout_ratio: float = 0.1, kernel: str = "matmul"):
        super().__init__(channels, num_classes, in_index, dropout_ratio)
        self.kernel = kernel
        self.in_conv = ConvBNReLU(in_channels, channels, kernel_size=3, padding=1)

    def build_out_conv(self, channels: int) -> None:
        """Called by subclasses after their attention modules, to keep mmseg's state-dict order."""
        self.out_conv = ConvBNReLU(channels * 2, channels)

    def context(self, x: torch.Tensor, return_attention: bool = False):
        raise NotImplementedError

    def forward(self, features: list[torch.Tensor], return_attention: bool = False):
        """Logits at the feature resolution; with ``return_attention`` also the captured attention."""
        x = self.in_conv(features[self.in_index])
        result = self.context(x, return_attention)
        context, attention = result if return_attention else (result, None)
        logits = self.classify(self.out_conv(torch.cat([context, x], dim=1)))
        return (logits, attention) if return_attention else logits
