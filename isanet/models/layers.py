"""Conv-BN-ReLU, the one layer every part of ISANet is built from, and the token views attention works on.

The module and parameter names (``conv``/``bn``) are mmsegmentation's ``ConvModule``'s, so that a published
checkpoint's keys land on the right tensors.
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


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``N x C x H x W`` -> ``N x HW x C`` (a free view when ``x`` is channels-last)."""
    n, c = x.shape[:2]
    return x.permute(0, 2, 3, 1).reshape(n, -1, c)  # N x C x H x W -> N x H x W x C -> N x HW x C


def from_tokens(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``N x HW x C`` -> ``N x C x H x W`` as a channels-last view, with no copy."""
    n, _, c = tokens.shape
    return tokens.reshape(n, height, width, c).permute(0, 3, 1, 2)  # N x HW x C -> N x H x W x C -> N x C x H x W
