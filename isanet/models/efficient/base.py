"""The base every efficient attention shares: a module is a list of *hops*, each a set of projections and a
pattern of which keys a query may read; :func:`compute_hops` is the one place that picks how they are computed.

The efficient attentions that followed the non-local block (*Non-local Neural Networks*, Wang et al.,
arXiv:1711.07971, https://arxiv.org/abs/1711.07971) all compute the same ``softmax(Q Kᵀ / sqrt(d)) V`` as dense
attention, with most affinities left out. What a hop leaves out is its *pattern*, a rule on pixel coordinates
(:class:`~isanet.models.efficient.flex.Pattern`); written out for a map it is its *mask*, a boolean ``L x L``
matrix, row = query, column = key, positions numbered row-major. A method is *exactly* dense attention with its
masks applied before the softmax (``-inf`` where a mask is ``False``): :func:`masked_dense` computes that slow form
from a module's own projections and hop masks, and ``tests/models/test_efficient_attention.py`` (and notebook 06)
check every module against it.

Some modules attend more than once per call (ISA: long range then short range; axial: row then column). Each
such step is a hop with its own projections; :meth:`PatternAttention.hop_masks` lists one mask per hop and
:meth:`PatternAttention.reach` is their boolean product: which pixels a query reads after the whole module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from isanet.models.attention import (
    PATTERN_KERNELS,
    Kernel,
    SelfAttentionBlock,
    StepName,
    attend,
    attention_weights,
    check_kernel,
)
from isanet.models.efficient.flex import Everything, FlexOptions, Pattern, PatternOnMap
from isanet.models.layers import grid

#: The flex options of a module nobody configured: tokens row-major, 128-token tiles.
ROW_MAJOR = FlexOptions()


def compose(hops: list[torch.Tensor]) -> torch.Tensor:
    """Boolean product of hop masks applied in order: ``out[i, j]`` is true when information from key ``j``
    reaches query ``i`` through the hops (``hops[-1] @ ... @ hops[0]``)."""
    reach = hops[0]
    for hop in hops[1:]:
        reach = (hop.float() @ reach.float()) > 0  # L x L: some m with hop[i, m] and reach[m, j]
    return reach


def compute_hops(x: torch.Tensor, relations: list[SelfAttentionBlock], kernel: Kernel,
                 grouped: Callable[[torch.Tensor], torch.Tensor], patterns: list[Pattern],
                 padding: tuple[int, int, int, int] = (0, 0, 0, 0), options: FlexOptions = ROW_MAJOR,
                 cell: tuple[int, int] = (8, 8), steps: Sequence[StepName | None] | None = None) -> torch.Tensor:
    """Every attention module's forward pass on ``N x C x H x W``, in one of its two forms.

    A kernel that takes a pattern (:data:`~isanet.models.attention.PATTERN_KERNELS`: flex) gets the hops as
    patterns over the whole map: pad ``x`` (``(left, right, top, bottom)``), then per hop its relation's
    projections over the whole (padded) map, attention restricted to the hop's pattern, the output projection;
    crop. Every projection is 1x1, so one pass over the whole map equals ISA's or axial's per-group passes. The
    other kernels run the module's ``grouped`` form: its tokens regrouped so that each hop is dense attention
    inside groups (ISA's permutes, axial's rows), or its own explicit affinities (criss-cross, strided).
    ``steps`` names the hops (ISA's) for :func:`~isanet.models.attention.identity_steps`.
    """
    if kernel not in PATTERN_KERNELS:
        return grouped(x)
    height, width = x.shape[2:]
    left, right, top, bottom = padding
    out = F.pad(x, padding) if any(padding) else x  # N x C x Hp x Wp
    padded_h, padded_w = out.shape[2:]
    for relation, pattern, step in zip(relations, patterns, steps or [None] * len(relations), strict=True):
        context = attend(*relation.tokens(out), kernel,  # N x HpWp x C_key, C_key, C -> N x HpWp x C
                         pattern=PatternOnMap(pattern, padded_h, padded_w, options, cell), step=step)
        out = relation.project(context, padded_h, padded_w)  # N x C x Hp x Wp
    return out[:, :, top:top + height, left:left + width]


class PatternAttention(nn.Module):
    """Base of the attention modules compared in notebook 06: geometry (hops, reach, affinity count) and the
    kernel they actually compute with. Subclasses implement :meth:`relations`, :meth:`grouped_forward`,
    :meth:`hop_masks`, :meth:`flex_patterns` and :meth:`affinity_entries`; one that pads the map first (ISA)
    overrides :meth:`padding`."""

    #: True when ``kernel="sdpa"`` really reaches PyTorch's ``scaled_dot_product_attention``; False when the
    #: pattern has no form sdpa takes and the module always computes its affinities explicitly.
    uses_sdpa = True
    #: True when its grouped form may hand sdpa a mask (window attention's padded windows), which sends it to
    #: PyTorch's unfused path on a CPU: the affinity is then formed after all (the memory estimate counts it).
    sdpa_masked = False
    #: The token order and tile size of ``kernel="flex"`` (:func:`configure_flex` sets them on a whole model).
    flex: FlexOptions = ROW_MAJOR
    #: The cell of the ``group`` and ``block`` token orders: ISA's block, the window, the stride.
    cell: tuple[int, int] = (8, 8)
    #: The names of its hops for :func:`~isanet.models.attention.identity_steps` (ISA's two steps; None: unnamed).
    step_names: tuple[StepName, ...] | None = None

    def __init__(self, kernel: Kernel = "matmul"):
        super().__init__()
        self.kernel = check_kernel(kernel)

    @property
    def computed_with(self) -> str:
        """The kernel this module really runs: its ``kernel``, or ``"matmul"`` when it has no sdpa form."""
        return self.kernel if self.uses_sdpa or self.kernel in PATTERN_KERNELS else "matmul"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The module's output (the shape of ``x``), in the form its kernel takes (:func:`compute_hops`)."""
        return compute_hops(x, self.relations(), self.kernel, self.grouped_forward, self.flex_patterns(),
                            self.padding(*x.shape[2:]), self.flex, self.cell, self.step_names)

    def grouped_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The output with the ``matmul`` or ``sdpa`` kernel: the module's own regrouping or affinities."""
        raise NotImplementedError

    def flex_patterns(self) -> list[Pattern]:
        """One :class:`~isanet.models.efficient.flex.Pattern` per hop, over the same (padded) map as
        :meth:`hop_masks`."""
        raise NotImplementedError

    def relations(self) -> list[SelfAttentionBlock]:
        """The :class:`SelfAttentionBlock` (projections) of each hop, in order."""
        raise NotImplementedError

    def padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(left, right, top, bottom)`` zero padding the module applies to the map before its projections;
        :meth:`hop_masks` are masks over the padded map."""
        return 0, 0, 0, 0

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The sides of the largest map the module computes on: the map padded as :meth:`padding` says, or, for a
        module whose grouped form pads its tokens to whole cells (window, strided), to those cells; what the
        memory estimate (:mod:`isanet.models.footprint`) counts its tokens over."""
        left, right, top, bottom = self.padding(height, width)
        return top + height + bottom, left + width + right

    def hop_masks(self, height: int, width: int) -> list[torch.Tensor]:
        """One boolean ``L x L`` mask per hop over the (padded) map, row-major; ``L`` = padded pixels."""
        raise NotImplementedError

    def reach(self, height: int, width: int) -> torch.Tensor:
        """``HW x HW`` mask of which pixels each pixel reads after the whole module (all its hops), over the
        unpadded map. With padding, a path may pass through a padded position (ISA's does). Dense ``(HW)²``
        matrices multiplied hop by hop: meant for the small maps of pictures and tests."""
        left, right, top, bottom = self.padding(height, width)
        reach = compose(self.hop_masks(height, width))
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

    def grouped_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relation(x, self.kernel)

    def hop_masks(self, height: int, width: int) -> list[torch.Tensor]:
        return [torch.ones(height * width, height * width, dtype=torch.bool)]

    def flex_patterns(self) -> list[Pattern]:
        return [Everything()]

    def affinity_entries(self, height: int, width: int) -> int:
        return (height * width) ** 2


def configure_flex(module: nn.Module, options: FlexOptions) -> nn.Module:
    """``module`` with ``options`` (token order, tile size) on every attention inside it; returns it."""
    for inner in module.modules():
        if isinstance(inner, PatternAttention):
            inner.flex = options
    return module


def masked_dense(module: PatternAttention, x: torch.Tensor) -> torch.Tensor:
    """What ``module(x)`` must equal, the slow way: pad as the module does, then for each hop the full ``L x L``
    dense logits through that hop's projections, ``-inf`` where the hop's mask is False, softmax, output
    projection; crop. It materialises every logit, so it is for small maps (tests, notebook 06)."""
    height, width = x.shape[2:]
    left, right, top, bottom = module.padding(height, width)
    out = F.pad(x, (left, right, top, bottom))
    for relation, mask in zip(module.relations(), module.hop_masks(height, width), strict=True):
        query, key, value = relation.tokens(out)  # N x L x C each
        out = relation.project(attention_weights(query, key, mask) @ value, *out.shape[2:])  # N x C x Hp x Wp
    return out[:, :, top:top + height, left:left + width]
