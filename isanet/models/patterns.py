"""Attention patterns: which keys each query may read, as boolean ``HW x HW`` masks, and the base class every
efficient attention of :mod:`isanet.models.efficient_attention` shares.

The efficient attentions that followed the non-local block (*Non-local Neural Networks*, Wang et al.,
arXiv:1711.07971, https://arxiv.org/abs/1711.07971) all compute the same ``softmax(Q Kᵀ / sqrt(d)) V`` as dense
attention, with most affinities left out. What a method leaves out is its *pattern*: a boolean matrix, row =
query, column = key, positions numbered row-major. A method is *exactly* dense attention with its pattern
applied before the softmax (``-inf`` where the pattern is ``False``); ``tests/models/test_efficient_attention.py``
checks that for every module here.

Some modules attend more than once per call (ISA: long range then short range; axial: row then column). Each
such step is a *hop* with its own projections; :meth:`PatternAttention.hops` lists one mask per hop and
:meth:`PatternAttention.pattern` is their boolean product: which pixels a query reads after the whole module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from isanet.models.flex import Everything, FlexOptions, Pattern, flex_attend, needs_fallback
from isanet.models.layers import from_tokens
from isanet.models.self_attention import Kernel, SelfAttentionBlock, check_kernel


def same_group(ids: torch.Tensor) -> torch.Tensor:
    """``L x L`` mask of the positions whose ``ids`` (any shape, flattened row-major) are equal."""
    flat = ids.flatten()
    return flat[:, None] == flat[None, :]


def grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column index of every position of an ``height x width`` map, each ``height x width``."""
    rows = torch.arange(height).view(-1, 1).expand(height, width)
    cols = torch.arange(width).view(1, -1).expand(height, width)
    return rows, cols


def compose(hops: list[torch.Tensor]) -> torch.Tensor:
    """Boolean product of hop masks applied in order: ``out[i, j]`` is true when information from key ``j``
    reaches query ``i`` through the hops (``hops[-1] @ ... @ hops[0]``)."""
    reach = hops[0]
    for hop in hops[1:]:
        reach = (hop.float() @ reach.float()) > 0  # L x L: some m with hop[i, m] and reach[m, j]
    return reach


def masked_attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, allowed: torch.Tensor,
                  kernel: Kernel = "matmul") -> torch.Tensor:
    """:func:`isanet.models.self_attention.attend` with a boolean mask (``B x Lq x Lk`` or broadcastable;
    ``False`` = never read) applied before the softmax. ``sdpa`` passes the mask to PyTorch's kernel, which
    then picks a path that takes masks (on CPU: its unfused math path)."""
    scale = query.shape[-1] ** -0.5
    if check_kernel(kernel) == "sdpa":
        mask = allowed[:, None] if allowed.dim() == 3 else allowed
        return F.scaled_dot_product_attention(query[:, None], key[:, None], value[:, None], attn_mask=mask,
                                              scale=scale)[:, 0]
    logits = torch.matmul(query, key.transpose(1, 2)) * scale  # B x Lq x Lk
    return torch.matmul(torch.softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1), value)


#: The flex options of a module nobody configured: tokens row-major, 128-token tiles.
ROW_MAJOR = FlexOptions()


def flex_relations(x: torch.Tensor, relations: list[SelfAttentionBlock], patterns: list[Pattern],
                   padding: tuple[int, int, int, int] = (0, 0, 0, 0), options: FlexOptions = ROW_MAJOR,
                   cell: tuple[int, int] = (8, 8)) -> torch.Tensor:
    """Any module here with the flex kernel: pad ``x`` (``N x C x H x W``; ``(left, right, top, bottom)``), then
    per hop its relation's projections over the whole (padded) map, flex attention restricted to the hop's
    pattern, the output projection; crop. Every projection is 1x1, so one pass over the whole map equals ISA's
    or axial's per-group passes. An input the flex kernel cannot run (:func:`~isanet.models.flex.needs_fallback`)
    gets the same pattern as an explicit mask."""
    height, width = x.shape[2:]
    left, right, top, bottom = padding
    out = F.pad(x, padding) if any(padding) else x  # N x C x Hp x Wp
    padded_h, padded_w = out.shape[2:]
    for relation, pattern in zip(relations, patterns, strict=True):
        query, key, value = relation.tokens(out)  # N x HpWp x C_key, C_key, C
        if needs_fallback(query, key, value):
            context = masked_attend(query, key, value, pattern.dense(padded_h, padded_w, x.device))
        else:
            context = flex_attend(query, key, value, pattern, padded_h, padded_w, options.order,
                                  options.cell or cell, options.block_size)
        out = project_context(relation, context, padded_h, padded_w)  # N x C x Hp x Wp
    return out[:, :, top:top + height, left:left + width]


class PatternAttention(nn.Module):
    """Base of the attention modules compared in notebook 06: geometry (hops, pattern, affinity count) and the
    kernel they actually compute with. Subclasses implement :meth:`hops`, :meth:`flex_patterns`,
    :meth:`affinity_entries` and ``forward`` (which hands ``kernel="flex"`` to :meth:`flex_forward`); one that
    pads the map first (ISA) overrides :meth:`padding`."""

    #: True when ``kernel="sdpa"`` really reaches PyTorch's ``scaled_dot_product_attention``; False when the
    #: pattern has no form sdpa takes and the module always computes its affinities explicitly.
    uses_sdpa = True
    #: The token order and tile size of ``kernel="flex"`` (:func:`configure_flex` sets them on a whole model).
    flex: FlexOptions = ROW_MAJOR
    #: The cell of the ``group`` and ``block`` token orders: ISA's block, the window, the stride.
    cell: tuple[int, int] = (8, 8)

    def __init__(self, kernel: Kernel = "matmul"):
        super().__init__()
        self.kernel = check_kernel(kernel)

    @property
    def computed_with(self) -> str:
        """The kernel this module really runs: its ``kernel``, or ``"matmul"`` when it has no sdpa form."""
        return self.kernel if self.uses_sdpa or self.kernel == "flex" else "matmul"

    def flex_patterns(self) -> list[Pattern]:
        """One :class:`~isanet.models.flex.Pattern` per hop, over the same (padded) map as :meth:`hops`."""
        raise NotImplementedError

    def flex_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The module's output with the flex kernel, its tokens in ``self.flex.order``."""
        height, width = x.shape[2:]
        return flex_relations(x, self.relations(), self.flex_patterns(), self.padding(height, width), self.flex,
                              self.cell)

    def relations(self) -> list[SelfAttentionBlock]:
        """The :class:`SelfAttentionBlock` (projections) of each hop, in order."""
        raise NotImplementedError

    def padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(left, right, top, bottom)`` zero padding the module applies to the map before its projections;
        :meth:`hops` are masks over the padded map."""
        return 0, 0, 0, 0

    def hops(self, height: int, width: int) -> list[torch.Tensor]:
        """One boolean ``L x L`` mask per hop over the (padded) map, row-major; ``L`` = padded pixels."""
        raise NotImplementedError

    def pattern(self, height: int, width: int) -> torch.Tensor:
        """``HW x HW`` mask of which pixels each pixel reads after the whole module (all its hops), over the
        unpadded map. With padding, a path may pass through a padded position (ISA's does). Dense ``(HW)²``
        matrices multiplied hop by hop: meant for the small maps of pictures and tests."""
        left, right, top, bottom = self.padding(height, width)
        reach = compose(self.hops(height, width))
        padded_w = left + width + right
        rows, cols = grid(height, width)
        real = ((rows + top) * padded_w + cols + left).flatten()  # padded index of each real pixel
        return reach[real][:, real]

    def affinity_entries(self, height: int, width: int) -> int:
        """Affinity entries the module materialises per image (padded or masked entries included)."""
        raise NotImplementedError


class OneRelationAttention(PatternAttention):
    """A pattern computed in one hop with one :class:`SelfAttentionBlock` (``relation``): dense, criss-cross,
    window and strided attention; they differ only in which keys each query reads."""

    def __init__(self, channels: int = 512, key_channels: int = 256, kernel: Kernel = "matmul"):
        super().__init__(kernel)
        self.relation = SelfAttentionBlock(channels, key_channels)

    def relations(self) -> list[SelfAttentionBlock]:
        return [self.relation]


class DenseAttention(OneRelationAttention):
    """The non-local block: one :class:`SelfAttentionBlock` over the whole map, every pixel reads every pixel.
    The same projections as every other module here, so they are measured and compared alike."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flex_forward(x) if self.kernel == "flex" else self.relation(x, self.kernel)

    def hops(self, height: int, width: int) -> list[torch.Tensor]:
        return [torch.ones(height * width, height * width, dtype=torch.bool)]

    def flex_patterns(self) -> list[Pattern]:
        return [Everything()]

    def affinity_entries(self, height: int, width: int) -> int:
        return (height * width) ** 2


def project_context(relation: SelfAttentionBlock, context: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``relation``'s output projection of ``N x HW x C`` context tokens, as the dense block ends: the
    ``N x C x H x W`` output."""
    return relation.output_project(from_tokens(context, height, width))



def configure_flex(module: nn.Module, options: FlexOptions) -> nn.Module:
    """``module`` with ``options`` (token order, tile size) on every attention inside it; returns it."""
    for inner in module.modules():
        if isinstance(inner, PatternAttention):
            inner.flex = options
    return module
