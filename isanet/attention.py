"""Dense self-attention: the block ISA runs inside each group, and the baseline ISA is measured against.

Every position attends to every other position of the map it is given:
``context = softmax(Q Kᵀ / sqrt(d)) V`` followed by an output projection. Two kernels compute the same thing:

* ``"matmul"`` builds the affinity matrix explicitly (``L x L`` per map), so it can hand the weights back for
  visualisation; its memory grows with ``L²``.
* ``"sdpa"`` calls :func:`torch.nn.functional.scaled_dot_product_attention` in a layout its fused kernels
  accept (see :func:`fused_attention`), so the affinity is never materialised (CPU flash kernel; flash or
  memory-efficient kernels on GPUs).

Projection names and shapes are mmsegmentation's ISA ``SelfAttentionBlock``: two conv-BN-ReLU layers for keys
and queries, a plain 1x1 conv for values, and a conv-BN-ReLU output projection.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from isanet.heads import ContextHead, ConvBNReLU

Kernel = Literal["matmul", "sdpa"]
KERNELS: tuple[str, ...] = ("matmul", "sdpa")


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``N x C x H x W`` -> ``N x HW x C`` (a free view when ``x`` is channels-last)."""
    n, c = x.shape[:2]
    return x.permute(0, 2, 3, 1).reshape(n, -1, c)


def from_tokens(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``N x HW x C`` -> ``N x C x H x W`` as a channels-last view, with no copy."""
    n, _, c = tokens.shape
    return tokens.reshape(n, height, width, c).permute(0, 3, 1, 2)


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, kernel: Kernel = "matmul",
           return_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled dot-product attention over token tensors (``B x L x C``), scaled by ``C_key ** -0.5``.

    Returns the context (``B x L x C_value``) and, for the matmul kernel when asked, the weights (``B x L x L``).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    scale = query.shape[-1] ** -0.5
    if kernel == "sdpa":
        if return_weights:
            raise ValueError("the fused 'sdpa' kernel never forms the weights; use kernel='matmul' to get them")
        return fused_attention(query, key, value, scale), None
    weights = torch.softmax(torch.matmul(query, key.transpose(1, 2)) * scale, dim=-1)
    return torch.matmul(weights, value), weights if return_weights else None


def fused_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float) -> torch.Tensor:
    """``scaled_dot_product_attention`` arranged so that PyTorch's fused kernels accept it.

    Fused kernels want 4-D ``B x heads x L x d`` inputs with a unit last stride; given anything else PyTorch
    silently falls back to its unfused math path. ISA's values are wider (512) than its keys (256):

    * On CUDA the memory-efficient kernel takes wider values as they are: one head.
    * On CPU the only fused kernel is flash, which wants equal query/value widths. The value channels are
      split into ``C_value / C_key`` "heads" that share one query/key: every head gets the same softmax
      weights, which is exactly single-head attention with the wide value (at the price of ``QKᵀ`` once per
      head), and the ``L x L`` affinity is never stored.
    """
    batch, length, key_width = query.shape
    value_width = value.shape[-1]
    # Only the last dimension must be unit-stride: the views below are free for token-contiguous inputs.
    query, key, value = query.contiguous(), key.contiguous(), value.contiguous()
    heads = value_width // key_width
    if query.device.type != "cpu" or value_width % key_width or heads == 1:
        return F.scaled_dot_product_attention(query[:, None], key[:, None], value[:, None], scale=scale)[:, 0]
    query, key = (t[:, None].expand(batch, heads, length, key_width) for t in (query, key))
    value = value.view(batch, length, heads, key_width).transpose(1, 2)
    context = F.scaled_dot_product_attention(query, key, value, scale=scale)
    return context.transpose(1, 2).reshape(batch, length, value_width)


class SelfAttentionBlock(nn.Module):
    """Dense self-attention over a whole ``N x C x H x W`` map; output has the input's shape."""

    def __init__(self, in_channels: int = 512, channels: int = 256):
        super().__init__()
        self.channels = channels
        self.key_project = nn.Sequential(ConvBNReLU(in_channels, channels), ConvBNReLU(channels, channels))
        self.query_project = nn.Sequential(ConvBNReLU(in_channels, channels), ConvBNReLU(channels, channels))
        self.value_project = nn.Conv2d(in_channels, in_channels, 1)
        self.output_project = ConvBNReLU(in_channels, in_channels)

    def forward(self, x: torch.Tensor, kernel: Kernel = "matmul",
                return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attend within ``x``; with ``return_weights`` also give the ``N x HW x HW`` attention weights
        (row = query position, column = key position, both in row-major order)."""
        height, width = x.shape[2:]
        context, weights = attend(to_tokens(self.query_project(x)), to_tokens(self.key_project(x)),
                                  to_tokens(self.value_project(x)), kernel, return_weights)
        out = self.output_project(from_tokens(context, height, width))
        return (out, weights) if return_weights else out


class DenseHead(ContextHead):
    """The dense baseline as a drop-in for :class:`isanet.isa.ISAHead`: the same in_conv, out_conv and
    classifier around one :class:`SelfAttentionBlock` over the whole map (``relation``), so that any difference
    in cost or output comes from the attention pattern alone."""

    def __init__(self, in_channels: int = 2048, channels: int = 512, isa_channels: int = 256,
                 num_classes: int = 19, in_index: int = 3, dropout_ratio: float = 0.1, kernel: str = "matmul"):
        super().__init__(in_channels, channels, num_classes, in_index, dropout_ratio, kernel)
        self.relation = SelfAttentionBlock(channels, isa_channels)
        self.build_out_conv(channels)

    def context(self, x: torch.Tensor, return_attention: bool = False):
        return self.relation(x, self.kernel, return_attention)
