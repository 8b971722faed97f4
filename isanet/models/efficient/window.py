"""Window attention: each pixel reads the pixels of its own ``k x k`` window; the shifted variant moves the
window grid by ``k // 2`` so that the next layer mixes neighbouring windows.

*Swin Transformer: Hierarchical Vision Transformer using Shifted Windows*, Liu et al., arXiv:2103.14030,
https://arxiv.org/abs/2103.14030. Windows do not overlap; one layer never leaves its window, so information
crosses window borders only when a later layer uses a shifted grid, and it spreads by about ``k / 2`` pixels a
layer. Swin shifts with a cyclic roll and masks the wrapped-around pixels apart; that is the same partition
as the shifted grid used here (smaller windows at the borders). When ``k`` does not divide the map, the
border windows are smaller too: the token map is zero-padded to whole windows and the padded keys are masked,
so padding never takes part (unlike ISA's, which is a real position of its groups).

Without padding every window is plain dense attention (both kernels, fused ``sdpa`` included); with padding
``sdpa`` gets a boolean mask, which on a CPU means PyTorch's unfused path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from isanet.models.attention import Kernel, attend
from isanet.models.efficient.base import OneRelationAttention
from isanet.models.efficient.flex import Pattern, SameCell
from isanet.models.layers import grid, same_group


def to_blocks(t: torch.Tensor, size: int) -> torch.Tensor:
    """``N x Hp x Wp x C`` (sides multiples of ``size``) -> ``(N * gh * gw) x size² x C``, one row per block."""
    n, hp, wp, c = t.shape
    # N x Hp x Wp x C -> N x gh x size x gw x size x C -> N x gh x gw x size x size x C
    t = t.reshape(n, hp // size, size, wp // size, size, c).permute(0, 1, 3, 2, 4, 5)
    return t.reshape(-1, size * size, c)  # -> (N*gh*gw) x size² x C


def from_blocks(t: torch.Tensor, n: int, hp: int, wp: int, size: int) -> torch.Tensor:
    """Inverse of :func:`to_blocks`: ``(N * gh * gw) x size² x C`` -> ``N x Hp x Wp x C``."""
    c = t.shape[-1]
    # (N*gh*gw) x size² x C -> N x gh x gw x size x size x C -> N x gh x size x gw x size x C
    t = t.reshape(n, hp // size, wp // size, size, size, c).permute(0, 1, 3, 2, 4, 5)
    return t.reshape(n, hp, wp, c)  # -> N x Hp x Wp x C


def pad_tokens(tokens: torch.Tensor, height: int, width: int, top: int, bottom: int, left: int,
               right: int) -> torch.Tensor:
    """``N x HW x C`` tokens -> zero-padded ``N x Hp x Wp x C`` map."""
    n = tokens.shape[0]
    return F.pad(tokens.reshape(n, height, width, -1), (0, 0, left, right, top, bottom))  # N x Hp x Wp x C


class WindowAttention(OneRelationAttention):
    """Attention inside non-overlapping ``window x window`` windows, the grid moved by ``shift`` pixels
    (0: plain; ``window // 2``: Swin's shifted windows)."""

    sdpa_masked = True  # padded windows mask their padded keys

    def __init__(self, channels: int = 512, key_channels: int = 256, window: int = 8, shift: int = 0,
                 kernel: Kernel = "matmul"):
        if window < 1 or not 0 <= shift < window:
            raise ValueError(f"window must be >= 1 and 0 <= shift < window, got window={window}, shift={shift}")
        super().__init__(channels, key_channels, kernel)
        self.window, self.shift = window, shift
        self.cell = (window, window)

    def _padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)`` of whole windows around the map, the grid moved by ``shift``."""
        k, s = self.window, self.shift
        return s, math.ceil((height + s) / k) * k - height - s, s, math.ceil((width + s) / k) * k - width - s

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        top, bottom, left, right = self._padding(height, width)
        return top + height + bottom, left + width + right

    def grouped_forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        top, bottom, left, right = pad = self._padding(height, width)
        hp, wp = self.padded_size(height, width)
        query, key, value = (to_blocks(pad_tokens(t, height, width, *pad), self.window)  # B x k² x C
                             for t in self.relation.tokens(x))
        if pad == (0, 0, 0, 0):
            context = attend(query, key, value, self.kernel)
        else:
            real = torch.ones(1, height * width, 1, device=x.device)
            real = to_blocks(pad_tokens(real, height, width, *pad), self.window) > 0  # windows x k² x 1
            context = attend(query, key, value, self.kernel, allowed=real.transpose(1, 2).repeat(n, 1, 1))
        context = from_blocks(context, n, hp, wp, self.window)[:, top:top + height, left:left + width]
        context = context.reshape(n, height * width, -1)  # N x H x W x C -> N x HW x C
        return self.relation.project(context, height, width)

    def hop_masks(self, height: int, width: int) -> list[torch.Tensor]:
        rows, cols = grid(height, width)
        return [same_group((rows + self.shift) // self.window * (width + self.window)
                           + (cols + self.shift) // self.window)]

    def flex_patterns(self) -> list[Pattern]:
        """The (shifted) window over the unpadded map: border windows are smaller, nothing needs padding."""
        return [SameCell(self.window, self.window, self.shift)]

    def affinity_entries(self, height: int, width: int) -> int:
        padded_h, padded_w = self.padded_size(height, width)
        return padded_h * padded_w * self.window ** 2
