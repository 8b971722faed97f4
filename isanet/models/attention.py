"""Dense self-attention and the one kernel dispatch every attention of the kit computes through.

The block is the non-local block of *Non-local Neural Networks* (Wang et al., arXiv:1711.07971) in the form
mmsegmentation's ISANet uses (``mmseg/models/decode_heads/isa_head.py``, ``SelfAttentionBlock``): ISA runs one
inside each group (:mod:`isanet.models.isa`), and the dense baseline one over the whole map.

Every position attends to the positions it may read: ``context = softmax(Q Kᵀ / sqrt(d) + mask) V``, followed
by an output projection. :func:`attend` is the **one kernel dispatch**: ISA's steps, the dense baseline and every
comparison attention of :mod:`isanet.models.efficient` hand their query, key and value tokens to it, so a
kernel (or a change to what a step computes) is decided in this one place. Three kernels compute the same thing:

* ``"matmul"`` builds the affinity matrix explicitly (``L x L`` per map), so it can hand the weights back for
  visualisation (:func:`attend_with_weights`); its memory grows with ``L²``.
* ``"sdpa"`` calls :func:`torch.nn.functional.scaled_dot_product_attention` in a layout its fused kernels
  accept (see :func:`fused_attention`), so the affinity is never materialised (CPU flash kernel; flash or
  memory-efficient kernels on GPUs). With a mask PyTorch picks a path that takes one (on CPU: unfused).
* ``"flex"`` is PyTorch's FlexAttention (:mod:`isanet.models.efficient.flex`): a pattern over the whole map as a
  ``mask_mod``, computed block-sparse. It is the one kernel that takes a pattern instead of regrouped tokens
  (:data:`PATTERN_KERNELS`), so modules hand it their hops as patterns over the whole map. Inference only on a
  CPU: an input that requires grad is computed with ``"matmul"`` and the pattern's mask instead (one warning).

**The identity step.** Inside :func:`identity_steps`, the named steps of ISA (``"long_range"``,
``"short_range"``) attend each position to itself alone: their context is their value (query, key, value and
output projections kept). It is state of this dispatch, so every kernel, attention capture and a compiled copy
(Dynamo guards the state and recompiles) see it; ``isanet.analysis.identity_step`` is the tool built on it.

Projection names and shapes are mmsegmentation's ISA ``SelfAttentionBlock``: two conv-BN-ReLU layers for keys
and queries, a plain 1x1 conv for values, and a conv-BN-ReLU output projection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal, NamedTuple, get_args

import torch
import torch.nn.functional as F
from torch import nn

from isanet.models.efficient.flex import PatternOnMap, flex_attend, needs_fallback
from isanet.models.layers import ConvBNReLU, from_tokens, to_tokens

#: The attention kernel: "matmul" forms the affinity (and can return it), "sdpa" is PyTorch's fused kernel,
#: "flex" PyTorch's block-sparse FlexAttention.
Kernel = Literal["matmul", "sdpa", "flex"]
KERNELS: tuple[Kernel, ...] = get_args(Kernel)
#: The kernels that compute a pattern over the whole map rather than dense attention inside regrouped tokens.
PATTERN_KERNELS: tuple[Kernel, ...] = ("flex",)
#: The named attention steps: ISA's two (the other modules' hops are unnamed).
StepName = Literal["long_range", "short_range"]
STEP_NAMES: tuple[StepName, ...] = get_args(StepName)
#: The steps that attend to themselves alone right now (see :func:`identity_steps`). A module global that is
#: rebound, never mutated, so that a compiled graph guards on its value.
_identity: frozenset[str] = frozenset()


@contextlib.contextmanager
def identity_steps(*steps: StepName) -> Iterator[None]:
    """Inside, each named step attends every position to itself alone (its context is its value): the ablation
    that shows whether a model uses that step. Nested calls add steps; leaving restores the previous set."""
    global _identity
    unknown = [step for step in steps if step not in STEP_NAMES]
    if unknown:
        raise ValueError(f"identity step must be one of {STEP_NAMES}, got {unknown[0]!r}")
    previous = _identity
    _identity = previous | frozenset(steps)
    try:
        yield
    finally:
        _identity = previous


def is_identity(step: StepName | None) -> bool:
    """Whether ``step`` attends to itself alone right now (:func:`identity_steps`)."""
    return step is not None and step in _identity


def check_kernel(kernel: str) -> Kernel:
    """``kernel`` itself, or a clear error naming the choices."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    return kernel


def attention_weights(query: torch.Tensor, key: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """``softmax(Q Kᵀ / sqrt(C_key))`` of token tensors ``B x Lq x C_key``, ``B x Lk x C_key``: the ``B x Lq x Lk``
    affinity; ``allowed`` (boolean, ``B x Lq x Lk`` or broadcastable; ``False`` = never read) is applied as
    ``-inf`` before the softmax."""
    logits = torch.matmul(query, key.transpose(1, 2)) * query.shape[-1] ** -0.5  # B x Lq x C @ B x C x Lk
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    return torch.softmax(logits, dim=-1)


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, kernel: Kernel = "matmul",
           allowed: torch.Tensor | None = None, pattern: PatternOnMap | None = None,
           step: StepName | None = None) -> torch.Tensor:
    """The context ``B x L x C_value`` of token tensors (``B x L x C``), scaled by ``C_key ** -0.5``: the one
    kernel dispatch.

    ``allowed`` restricts which keys each query reads (boolean mask, see :func:`attention_weights`). ``pattern``
    is the same restriction as a rule over the whole map the tokens list row-major: the flex kernel computes it
    block-sparse, the others as its mask. Without either, attention is dense. ``step`` names the step the
    tokens belong to, for :func:`identity_steps`.
    """
    kernel = check_kernel(kernel)
    if is_identity(step):
        return value  # every position reads itself alone: softmax over one key is 1
    if kernel == "flex" and not needs_fallback(query, key, value):
        if pattern is None:
            return flex_attend(query, key, value, None, 1, query.shape[1])
        return flex_attend(query, key, value, pattern.pattern, pattern.height, pattern.width,
                           pattern.options.order, pattern.cell, pattern.options.block_size)
    if pattern is not None:
        allowed = pattern.mask(query.device)
    if kernel == "sdpa":
        return fused_attention(query, key, value, query.shape[-1] ** -0.5, allowed)
    return torch.matmul(attention_weights(query, key, allowed), value)


def attend_with_weights(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        step: StepName | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`attend` with the explicit kernel, and the ``B x L x L`` weights it used (for the probes)."""
    if is_identity(step):
        batch, length = query.shape[:2]
        eye = torch.eye(length, dtype=value.dtype, device=value.device).expand(batch, length, length)
        return value, eye
    weights = attention_weights(query, key)  # B x L x L
    return torch.matmul(weights, value), weights


def fused_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float,
                    allowed: torch.Tensor | None = None) -> torch.Tensor:
    """``scaled_dot_product_attention`` arranged so that PyTorch's fused kernels accept it.

    Fused kernels want 4-D ``B x heads x L x d`` inputs with a unit last stride; given anything else PyTorch
    silently falls back to its unfused math path. ISA's values are wider (512) than its keys (256):

    * On CUDA the memory-efficient kernel takes wider values as they are: one head.
    * On CPU the only fused kernel is flash, which wants equal query/value widths. The value channels are
      split into ``C_value / C_key`` "heads" that share one query/key: every head gets the same softmax
      weights, which is exactly single-head attention with the wide value (at the price of ``QKᵀ`` once per
      head), and the ``L x L`` affinity is never stored.

    With a mask (``allowed``) no fused CPU kernel applies: one head, PyTorch's masked path.
    """
    batch, length, key_width = query.shape
    value_width = value.shape[-1]
    if allowed is not None:
        mask = allowed[:, None] if allowed.dim() == 3 else allowed  # B x Lq x Lk -> B x 1 x Lq x Lk
        return F.scaled_dot_product_attention(query[:, None], key[:, None], value[:, None], attn_mask=mask,
                                              scale=scale)[:, 0]
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


class BlockOutput(NamedTuple):
    """What :meth:`SelfAttentionBlock.forward_with_attention` returns."""

    out: torch.Tensor  # N x C x H x W, the block's output
    weights: torch.Tensor  # N x HW x HW softmax weights (row = query, column = key, row-major positions)


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

    def project(self, context: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The output projection of ``N x HW x C`` context tokens: the ``N x C x H x W`` output."""
        return self.output_project(from_tokens(context, height, width))

    def forward(self, x: torch.Tensor, kernel: Kernel = "matmul", step: StepName | None = None) -> torch.Tensor:
        """Attend within ``x`` (``N x C x H x W``); the output has the input's shape. ``step`` names the block's
        step (ISA's ``long_range`` or ``short_range``) for :func:`identity_steps`."""
        return self.project(attend(*self.tokens(x), kernel, step=step), *x.shape[2:])  # N x HW x C context

    def forward_with_attention(self, x: torch.Tensor, step: StepName | None = None) -> BlockOutput:
        """The same output (explicit kernel) and the ``N x HW x HW`` weights it used."""
        context, weights = attend_with_weights(*self.tokens(x), step=step)  # N x HW x C, N x HW x HW
        return BlockOutput(self.project(context, *x.shape[2:]), weights)
