"""The decode heads and their registry: the FCN auxiliary head, the context heads (ISA, the dense baseline, no
context, and notebook 06's other efficient attentions), and :data:`HEADS`, the heads a config may name.

*Interlaced Sparse Self-Attention for Semantic Segmentation*, Huang et al., arXiv:1907.12273,
https://arxiv.org/abs/1907.12273. Matches mmsegmentation 1.2.2 ``mmseg/models/decode_heads/isa_head.py``
(``ISAHead``) and ``fcn_head.py`` (``FCNHead``, ``num_convs=1``). The module and parameter names (``conv_seg``,
``convs.0``, ``in_conv``, ``global_relation``, ``local_relation``, ``out_conv``) are mmseg's, so that a published
checkpoint's ``decode_head.*`` and ``auxiliary_head.*`` keys land on the right tensors.

:data:`HEADS` is the one list of heads: ``ISANetConfig`` checks ``head`` against it, ``ISANet`` builds its decode
head with it, and ``isanet train --head`` / ``isanet bench model --head`` offer its names. ``isa``, ``dense`` and
``none`` are entries here; every attention method of :data:`isanet.models.efficient.registry.METHODS` that
declares a ``head`` is one too, so a new attention that is also a head is one entry, there.

Reach is made fair by *hops*: every sparse head attends twice, the number of hops after which ISA's
long-range then short-range step connects every pixel to every other. Criss-cross runs its layer twice with
shared weights (CCNet's recurrence ``R = 2``), axial attends along the rows then the columns, window attention
uses a plain then a shifted window grid (Swin's pair; its reach stays local, which is the point of comparing
it), strided attention two block + lattice layers. Dense attention reaches everything in one hop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
from torch import nn

from isanet.models.attention import Kernel, SelfAttentionBlock, check_kernel
from isanet.models.efficient.base import PatternAttention
from isanet.models.efficient.isa_module import interlaced_attention, interlaced_attention_with_weights
from isanet.models.efficient.registry import METHODS, MethodHead, build_attention
from isanet.models.isa import ISAWeights
from isanet.models.layers import ConvBNReLU


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


class HeadOutput(NamedTuple):
    """What :meth:`ContextHead.forward_with_attention` returns."""

    logits: torch.Tensor  # N x K x h x w, at the feature (1/8) resolution
    attention: ISAWeights | torch.Tensor  # ISA: both stages' weights; dense: N x hw x hw


class ContextHead(SegHead):
    """in_conv (3x3) -> attention context -> out_conv on [context, in_conv output] -> classifier.

    ISA and the dense baseline differ only in how they compute the context, so they share this frame and
    implement :meth:`context` and :meth:`context_with_attention`. ``kernel`` picks the attention kernel.
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int, in_index: int = 3,
                 dropout_ratio: float = 0.1, kernel: Kernel = "matmul"):
        super().__init__(channels, num_classes, in_index, dropout_ratio)
        self.kernel = check_kernel(kernel)
        self.in_conv = ConvBNReLU(in_channels, channels, kernel_size=3, padding=1)

    def build_out_conv(self, channels: int) -> None:
        """Called by subclasses after their attention modules, to keep mmseg's state-dict order."""
        self.out_conv = ConvBNReLU(channels * 2, channels)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def context_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, ISAWeights | torch.Tensor]:
        raise NotImplementedError

    def _logits(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.out_conv(torch.cat([context, x], dim=1)))  # N x 2C x h x w -> N x K x h x w

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits at the feature resolution."""
        x = self.in_conv(features[self.in_index])
        return self._logits(self.context(x), x)

    def forward_with_attention(self, features: list[torch.Tensor]) -> HeadOutput:
        """The same logits (explicit kernel), and the attention weights that made them."""
        x = self.in_conv(features[self.in_index])
        context, attention = self.context_with_attention(x)
        return HeadOutput(self._logits(context, x), attention)


class ISAHead(ContextHead):
    """mmseg's ``ISAHead``: in_conv 3x3 -> ISA (global then local relation) -> out_conv on [ISA, in_conv]
    -> dropout -> classifier. Logits at the feature (1/8) resolution."""

    def __init__(self, in_channels: int = 2048, channels: int = 512, isa_channels: int = 256,
                 num_classes: int = 19, down_factor: tuple[int, int] = (8, 8), in_index: int = 3,
                 dropout_ratio: float = 0.1, kernel: Kernel = "matmul"):
        super().__init__(in_channels, channels, num_classes, in_index, dropout_ratio, kernel)
        self.down_factor = tuple(down_factor)
        self.global_relation = SelfAttentionBlock(channels, isa_channels)
        self.local_relation = SelfAttentionBlock(channels, isa_channels)
        self.build_out_conv(channels)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        return interlaced_attention(x, self.global_relation, self.local_relation, self.down_factor, self.kernel)

    def context_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, ISAWeights]:
        return interlaced_attention_with_weights(x, self.global_relation, self.local_relation, self.down_factor)


class DenseHead(ContextHead):
    """The dense baseline as a drop-in for :class:`ISAHead`: the same in_conv, out_conv and classifier around one
    :class:`SelfAttentionBlock` over the whole map (``relation``), so that any difference in cost or output
    comes from the attention pattern alone."""

    def __init__(self, in_channels: int = 2048, channels: int = 512, isa_channels: int = 256,
                 num_classes: int = 19, in_index: int = 3, dropout_ratio: float = 0.1, kernel: Kernel = "matmul"):
        super().__init__(in_channels, channels, num_classes, in_index, dropout_ratio, kernel)
        self.relation = SelfAttentionBlock(channels, isa_channels)
        self.build_out_conv(channels)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        return self.relation(x, self.kernel)

    def context_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(self.relation.forward_with_attention(x))


class NoContextHead(ContextHead):
    """The ablation without a context module: the same in_conv and classifier, and an out_conv (1x1, C -> C) on
    the in_conv output alone. What ISA or dense attention add to a segmentation is measured against this head.

    Its out_conv reads ``C`` channels, not the ``2C`` of ``[context, x]``: there is no context to concatenate
    (feeding ``[x, x]`` would only double a weight). It has no attention, so :meth:`forward_with_attention`
    is refused with a one-line reason.
    """

    def __init__(self, in_channels: int = 2048, channels: int = 512, num_classes: int = 19, in_index: int = 3,
                 dropout_ratio: float = 0.1, kernel: Kernel = "matmul"):
        super().__init__(in_channels, channels, num_classes, in_index, dropout_ratio, kernel)
        self.out_conv = ConvBNReLU(channels, channels)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.classify(self.out_conv(self.in_conv(features[self.in_index])))

    def forward_with_attention(self, features: list[torch.Tensor]) -> HeadOutput:
        raise ValueError("head='none' has no attention module, so it has no attention weights to return")


class AttentionHead(ContextHead):
    """One of notebook 06's efficient attentions as a context module, in :class:`ISAHead`'s frame (the same
    in_conv, out_conv on ``[context, x]`` and classifier), so that heads differ only in their attention.

    ``layers`` (:class:`~isanet.models.efficient.base.PatternAttention` modules, kept as ``attention.0``, ...) run
    one after the other, the whole stack ``recurrences`` times with the same weights (CCNet's recurrent
    criss-cross). The modules compute their affinities without keeping them, so :meth:`forward_with_attention`
    is refused with a one-line reason; ``name`` is the head's registry name, for that line.
    """

    def __init__(self, name: str, layers: Sequence[PatternAttention], in_channels: int = 2048, channels: int = 512,
                 num_classes: int = 19, recurrences: int = 1, in_index: int = 3, dropout_ratio: float = 0.1,
                 kernel: Kernel = "matmul"):
        if not layers or recurrences < 1:
            raise ValueError(f"head={name!r} needs at least one attention layer and one recurrence")
        super().__init__(in_channels, channels, num_classes, in_index, dropout_ratio, kernel)
        self.name, self.recurrences = name, recurrences
        self.attention = nn.ModuleList(layers)
        self.build_out_conv(channels)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.recurrences):
            for layer in self.attention:
                x = layer(x)  # N x C x h x w -> N x C x h x w
        return x

    def forward_with_attention(self, features: list[torch.Tensor]) -> HeadOutput:
        raise ValueError(f"head={self.name!r} does not keep its attention weights; only 'isa' and 'dense' "
                         "return them")


class HeadArguments(Protocol):
    """What a head builder reads from the model's config (``ISANetConfig`` has every field): the heads module
    names the fields it needs instead of importing the config, which checks its ``head`` against :data:`HEADS`."""

    head: str
    channels: int
    isa_channels: int
    num_classes: int
    kernel: Kernel
    down_factor: tuple[int, int]
    window_size: int


#: ``(config, in_channels) -> decode head``: ``in_channels`` is the backbone's stage-4 width.
HeadBuilder = Callable[[HeadArguments, int], ContextHead]


@dataclass(frozen=True)
class HeadSpec:
    """One decode head: how to build it, what it is, and the attention hops its context makes."""

    description: str  # a few words for menus and tables
    hops: int  # attention hops of the context module (0: none)
    build: HeadBuilder
    attention_weights: bool = False  # forward_with_attention returns the weights (else it refuses, one line)
    #: The attention modules its context runs, in order (recurrences repeated), for a config: their geometry is
    #: what the memory estimate counts (:mod:`isanet.models.footprint`, which builds them on the meta device);
    #: None for a head without attention.
    attention: Callable[[HeadArguments], list[PatternAttention]] | None = None


def _common(config: HeadArguments, in_channels: int) -> dict:
    """The arguments every context head shares (the same in_conv, out_conv and classifier)."""
    return dict(in_channels=in_channels, channels=config.channels, num_classes=config.num_classes,
                kernel=config.kernel)


def _one_module(method: str) -> Callable[[HeadArguments], list[PatternAttention]]:
    """The attention of a head that is one module of ``method`` (ISA, dense) on the config's projections."""
    return lambda config: [build_attention(method, config.channels, config.isa_channels, config.kernel,
                                           config.down_factor)]


def _method_head(method: str, head: MethodHead) -> HeadSpec:
    """Head ``method``: :class:`AttentionHead` around ``head.layers`` layers of the method, on the config's
    ``channels`` / ``isa_channels`` projections, sized by the config field ``head.size_field``."""
    def layers(config: HeadArguments) -> list[PatternAttention]:
        size = getattr(config, head.size_field)
        return [build_attention(method, config.channels, config.isa_channels, config.kernel, size, layer)
                for layer in range(1, head.layers + 1)]

    def build(config: HeadArguments, in_channels: int) -> ContextHead:
        return AttentionHead(method, layers(config), recurrences=head.recurrences, **_common(config, in_channels))
    return HeadSpec(head.description, head.hops, build, attention=lambda config: layers(config) * head.recurrences)


#: The heads, in the order menus list them; "isa", "dense" and "none" build exactly the modules (and
#: parameter names) they always have, so published checkpoints and the mmseg parity tests are unchanged.
HEADS: dict[str, HeadSpec] = {
    "isa": HeadSpec("ISA: long-range then short-range attention (the published head)", 2,
                    lambda config, in_channels: ISAHead(isa_channels=config.isa_channels,
                                                        down_factor=config.down_factor,
                                                        **_common(config, in_channels)),
                    attention_weights=True, attention=_one_module("isa")),
    "dense": HeadSpec("dense self-attention over the whole map, ISA's projections", 1,
                      lambda config, in_channels: DenseHead(isa_channels=config.isa_channels,
                                                            **_common(config, in_channels)),
                      attention_weights=True, attention=_one_module("dense")),
    "none": HeadSpec("no context module (in_conv -> out_conv -> classifier), the ablation", 0,
                     lambda config, in_channels: NoContextHead(**_common(config, in_channels))),
    **{name: _method_head(name, method.head) for name, method in METHODS.items() if method.head is not None},
}


def build_head(config: HeadArguments, in_channels: int) -> ContextHead:
    """The decode head ``config.head`` names, reading the backbone's ``in_channels``-wide stage 4."""
    return HEADS[config.head].build(config, in_channels)
