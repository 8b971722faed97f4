"""The decode heads a config can name: one :class:`HeadSpec` per ``ISANetConfig.head``.

:data:`HEADS` is the one list: ``ISANetConfig`` checks ``head`` against it, ``ISANet`` builds its decode head
with it, and ``isanet train --head`` / ``isanet bench model --head`` offer its names. A new head is one entry
here (its module in :mod:`isanet.models.heads` or beside it) plus its tests in ``tests/models/``.

Reach is made fair by *hops*: every sparse head attends twice, the number of hops after which ISA's
long-range then short-range step connects every pixel to every other. Criss-cross runs its layer twice with
shared weights (CCNet's recurrence ``R = 2``), axial attends along the rows then the columns, window attention
uses a plain then a shifted window grid (Swin's pair; its reach stays local, which is the point of comparing
it), strided attention two block + lattice layers. Dense attention reaches everything in one hop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from isanet.models.efficient_attention import build_attention
from isanet.models.heads import AttentionHead, ContextHead, DenseHead, ISAHead, NoContextHead

if TYPE_CHECKING:
    from isanet.models.config import ISANetConfig

#: ``(config, in_channels) -> decode head``: ``in_channels`` is the backbone's stage-4 width.
HeadBuilder = Callable[["ISANetConfig", int], ContextHead]


@dataclass(frozen=True)
class HeadSpec:
    """One decode head: how to build it, what it is, and the attention hops its context makes."""

    description: str  # a few words for menus and tables
    hops: int  # attention hops of the context module (0: none)
    build: HeadBuilder
    attention_weights: bool = False  # forward_with_attention returns the weights (else it refuses, one line)


def _common(config: ISANetConfig, in_channels: int) -> dict:
    """The arguments every context head shares (the same in_conv, out_conv and classifier)."""
    return dict(in_channels=in_channels, channels=config.channels, num_classes=config.num_classes,
                kernel=config.kernel)


def _method_head(method: str, layers: int = 2, recurrences: int = 1,
                 size: Callable[[ISANetConfig], tuple[int, int]] = lambda config: config.down_factor
                 ) -> HeadBuilder:
    """A builder of head ``method``: :class:`AttentionHead` around ``layers`` layers of ``method`` (layer 2
    of ``window`` is the shifted grid), on the config's ``channels`` / ``isa_channels`` projections; ``size``
    picks the method's block, window side or stride from the config."""
    def build(config: ISANetConfig, in_channels: int) -> ContextHead:
        modules = [build_attention(method, config.channels, config.isa_channels, config.kernel, size(config),
                                   layer) for layer in range(1, layers + 1)]
        return AttentionHead(method, modules, recurrences=recurrences, **_common(config, in_channels))
    return build


#: The heads, in the order menus list them; "isa", "dense" and "none" build exactly the modules (and
#: parameter names) they always have, so published checkpoints and the mmseg parity tests are unchanged.
HEADS: dict[str, HeadSpec] = {
    "isa": HeadSpec("ISA: long-range then short-range attention (the published head)", 2,
                    lambda config, in_channels: ISAHead(isa_channels=config.isa_channels,
                                                        down_factor=config.down_factor,
                                                        **_common(config, in_channels)),
                    attention_weights=True),
    "dense": HeadSpec("dense self-attention over the whole map, ISA's projections", 1,
                      lambda config, in_channels: DenseHead(isa_channels=config.isa_channels,
                                                            **_common(config, in_channels)),
                      attention_weights=True),
    "none": HeadSpec("no context module (in_conv -> out_conv -> classifier), the ablation", 0,
                     lambda config, in_channels: NoContextHead(**_common(config, in_channels))),
    "ccnet": HeadSpec("criss-cross attention, twice with shared weights (CCNet's R = 2)", 2,
                      _method_head("ccnet", layers=1, recurrences=2)),
    "axial": HeadSpec("axial attention: a row hop, then a column hop", 2, _method_head("axial", layers=1)),
    "window": HeadSpec("window attention, plain then shifted windows of window_size (Swin)", 2,
                       _method_head("window",
                                    size=lambda config: (config.window_size, config.window_size))),
    "strided": HeadSpec("strided attention (block + lattice of down_factor), two layers", 2,
                        _method_head("strided")),
}


def build_head(config: ISANetConfig, in_channels: int) -> ContextHead:
    """The decode head ``config.head`` names, reading the backbone's ``in_channels``-wide stage 4."""
    return HEADS[config.head].build(config, in_channels)
