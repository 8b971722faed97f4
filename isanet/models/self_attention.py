"""Dense self-attention: the block ISA runs inside each group, and the baseline ISA is measured against.

The non-local block of *Non-local Neural Networks* (Wang et al., arXiv:1711.07971) in the form mmsegmentation's
ISANet uses (``mmseg/models/decode_heads/isa_head.py``, ``SelfAttentionBlock``).

Every position attends to every other position of the map it is given:
``context = softmax(Q Kᵀ / sqrt(d)) V`` followed by an output projection. Three kernels compute the same thing:

* ``"matmul"`` builds the affinity matrix explicitly (``L x L`` per map), so it can hand the weights back for
  visualisation; its memory grows with ``L²``.
* ``"sdpa"`` calls :func:`torch.nn.functional.scaled_dot_product_attention` in a layout its fused kernels
  accept (see :func:`fused_attention`), so the affinity is never materialised (CPU flash kernel; flash or
  memory-efficient kernels on GPUs).
* ``"flex"`` is PyTorch's FlexAttention (:mod:`isanet.models.flex`): each pattern as a ``mask_mod``, computed
  block-sparse; here, with nothing masked, it is dense attention. Inference only on a CPU: an input that
  requires grad is computed with ``"matmul"`` instead (one warning).

Projection names and shapes are mmsegmentation's ISA ``SelfAttentionBlock``: two conv-BN-ReLU layers for keys
and queries, a plain 1x1 conv for values, and a conv-BN-ReLU output projection.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

import torch
import torch.nn.functional as F
from torch import nn

from isanet.models.flex import flex_attend, needs_fallback
from isanet.models.layers import ConvBNReLU, from_tokens, to_tokens

#: The attention kernel: "matmul" forms the affinity (and can return it), "sdpa" is PyTorch's fused kernel,
#: "flex" PyTorch's block-sparse FlexAttention.
Kernel = Literal["matmul", "sdpa", "flex"]
KERNELS: tuple[Kernel, ...] = get_args(Kernel)


def check_kernel(kernel: str) -> Kernel:
    """``kernel`` itself, or a clear error naming the choices."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    return kernel


class BlockOutput(NamedTuple):
    """What :meth:`SelfAttentionBlock.forward_with_attention` returns."""

    out: torch.Tensor  # N x C x H x W, the block's output
    weights: torch.Tensor  # N x HW x HW softmax weights (row = query, column = key, row-major positions)


def attention_weights(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """``softmax(Q Kᵀ / sqrt(C_key))`` of token tensors ``B x L x C_key``: the ``B x L x L`` affinity."""
    scale = query.shape[-1] ** -0.5
    return torch.softmax(torch.matmul(query, key.transpose(1, 2)) * scale, dim=-1)  # B x L x C @ B x C x L


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, kernel: Kernel = "matmul") -> torch.Tensor:
    """Scaled dot-product attention over token tensors (``B x L x C``), scaled by ``C_key ** -0.5``: the
    context, ``B x L x C_value``."""
    kernel = check_kernel(kernel)
    if kernel == "sdpa":
        return fused_attention(query, key, value, query.shape[-1] ** -0.5)
    if kernel == "flex" and not needs_fallback(query, key, value):
        return flex_attend(query, key, value, None, 1, query.shape[1])
    return torch.matmul(attention_weights(query, key), value)


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
        # B x L x C -> B x 1 x L x C (one head) and back
        return F.scaled_dot_product_attention(query[:, None], key[:, None], value[:, None], scale=scale)[:, 0]
    # B x L x C_key -> B x heads x L x C_key (a free broadcast view: every head shares the query and key)
    query, key = (t[:, None].expand(batch, heads, length, key_width) for t in (query, key))
    # B x L x C_value -> B x L x heads x C_key -> B x heads x L x C_key
    value = value.view(batch, length, heads, key_width).transpose(1, 2)
    context = F.scaled_dot_product_attention(query, key, value, scale=scale)  # B x heads x L x C_key
    return context.transpose(1, 2).reshape(batch, length, value_width)  # -> B x L x heads x C_key -> B x L x C_value


class SelfAttentionBlock(nn.Module):
    """Dense self-attention over a whole ``N x C x H x W`` map; output has the input's shape.

    ``channels`` is the map's width ``C`` (also the value's), ``key_channels`` the width ``C_key`` of queries
    and keys, as in every attention module here (mmseg calls them ``in_channels`` and ``channels``)."""

    def __init__(self, channels: int = 512, key_channels: int = 256):
        super().__init__()
        self.key_channels = key_channels
        self.key_project = nn.Sequential(ConvBNReLU(channels, key_channels), ConvBNReLU(key_channels, key_channels))
        self.query_project = nn.Sequential(ConvBNReLU(channels, key_channels), ConvBNReLU(key_channels, key_channels))
        self.value_project = nn.Conv2d(channels, channels, 1)
        self.output_project = ConvBNReLU(channels, channels)

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Query, key and value of ``x`` as tokens: ``N x HW x C_key``, ``N x HW x C_key``, ``N x HW x C``."""
        return to_tokens(self.query_project(x)), to_tokens(self.key_project(x)), to_tokens(self.value_project(x))

    def forward(self, x: torch.Tensor, kernel: Kernel = "matmul") -> torch.Tensor:
        """Attend within ``x`` (``N x C x H x W``); the output has the input's shape."""
        height, width = x.shape[2:]
        context = attend(*self.tokens(x), kernel)  # N x HW x C
        return self.output_project(from_tokens(context, height, width))

    def forward_with_attention(self, x: torch.Tensor) -> BlockOutput:
        """The same output (explicit kernel) and the ``N x HW x HW`` weights it used."""
        height, width = x.shape[2:]
        query, key, value = self.tokens(x)
        weights = attention_weights(query, key)  # N x HW x HW
        context = torch.matmul(weights, value)  # N x HW x C
        return BlockOutput(self.output_project(from_tokens(context, height, width)), weights)
