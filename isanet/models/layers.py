"""Conv-BN-ReLU, the one layer every part of ISANet is built from, the token views attention works on, and the
pixel grid every attention pattern is defined on.

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


def grid(height: int, width: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column index of every position of an ``height x width`` map, each ``height x width``: the
    coordinates every group id and pattern of the kit is a function of."""
    rows = torch.arange(height, device=device).view(-1, 1).expand(height, width)  # H -> H x 1 -> H x W
    cols = torch.arange(width, device=device).view(1, -1).expand(height, width)  # W -> 1 x W -> H x W
    return rows, cols


def same_group(ids: torch.Tensor) -> torch.Tensor:
    """``L x L`` mask of the positions whose ``ids`` (any shape, flattened row-major) are equal: the boolean
    relation of an attention step that runs dense attention inside groups."""
    flat = ids.flatten()
    return flat[:, None] == flat[None, :]
