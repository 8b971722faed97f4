"""The decode heads: the FCN auxiliary head, and the context heads (ISA, the dense baseline, no context, and
notebook 06's other efficient attentions).

Matches mmsegmentation 1.2.2 ``mmseg/models/decode_heads/isa_head.py`` (``ISAHead``) and ``fcn_head.py``
(``FCNHead``, ``num_convs=1``). The module and parameter names (``conv_seg``, ``convs.0``, ``in_conv``,
``global_relation``, ``local_relation``, ``out_conv``) are mmseg's, so that a published checkpoint's
``decode_head.*`` and ``auxiliary_head.*`` keys land on the right tensors. Which head a config builds is
:data:`isanet.models.head_registry.HEADS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from isanet.models.interlaced import (
    ISAWeights,
    interlaced_attention,
    interlaced_attention_with_weights,
)
from isanet.models.layers import ConvBNReLU
from isanet.models.patterns import PatternAttention
from isanet.models.self_attention import Kernel, SelfAttentionBlock, check_kernel


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

    ``layers`` (:class:`~isanet.models.patterns.PatternAttention` modules, kept as ``attention.0``, ...) run
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
