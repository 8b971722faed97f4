"""METHODS: the efficient attentions of ISA's time side by side, on the projections of one dense block.

*Interlaced Sparse Self-Attention for Semantic Segmentation*, Huang et al., arXiv:1907.12273, compared with:
the non-local block (arXiv:1711.07971, :class:`~isanet.models.efficient.base.DenseAttention`), criss-cross
attention (CCNet, arXiv:1811.11721, :mod:`~isanet.models.efficient.criss_cross`), axial attention
(arXiv:1912.12180, :mod:`~isanet.models.efficient.axial`), windows (Swin, arXiv:2103.14030,
:mod:`~isanet.models.efficient.window`) and the strided pattern of the Sparse Transformer (arXiv:1904.10509,
:mod:`~isanet.models.efficient.strided`).

Every module owns :class:`~isanet.models.attention.SelfAttentionBlock` projections (one block per hop),
so the methods differ only in which affinities they compute. One *layer* is one module: for ISA and axial that
is two hops (ISA: long then short range; axial: row then column), for the others one. The second layer of
``window`` uses shifted windows, as Swin alternates them; every other method repeats itself.

:data:`METHODS` is the one list of them: the bench, the reach table, notebook 06's pictures and the CLI read
it, so a new method is one :class:`AttentionMethod` entry here (plus its module and its tests). An entry with a
``head`` (:class:`MethodHead`) is also a decode head of :data:`isanet.models.heads.HEADS`, built around its
layers in ISA's frame: no second entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from isanet.models.attention import Kernel
from isanet.models.efficient.axial import AxialAttention
from isanet.models.efficient.base import DenseAttention, PatternAttention
from isanet.models.efficient.criss_cross import CrissCrossAttention
from isanet.models.efficient.isa_module import ISAModule
from isanet.models.efficient.strided import StridedAttention
from isanet.models.efficient.window import WindowAttention

#: ``(channels, key_channels, kernel, down_factor, layer) -> module``: how a method builds layer 1 or 2.
Builder = Callable[[int, int, Kernel, tuple[int, int], int], PatternAttention]


@dataclass(frozen=True)
class MethodHead:
    """A method as a decode head: ``layers`` layers of it (layer 2 of ``window`` is the shifted grid), the stack
    run ``recurrences`` times with the same weights, sized by the config field ``size_field``."""

    description: str  # a few words for menus and tables
    hops: int  # attention hops of the head's context (every sparse head makes two: see isanet.models.heads)
    layers: int = 2
    recurrences: int = 1
    size_field: str = "down_factor"  # the ISANetConfig field that gives the block, window side or stride


@dataclass(frozen=True)
class AttentionMethod:
    """One efficient attention as the bench and notebook 06 show it."""

    label: str  # a few words for titles and tables
    paper: str  # the paper's title and arXiv link
    build: Builder
    square_size: bool = False  # takes one side (window side, stride): the down factor must be square
    head: MethodHead | None = None  # also a decode head (isa and dense have mmseg-named heads of their own)

    def check_down_factor(self, name: str, down_factor: tuple[int, int]) -> None:
        """Refuse, in one line, a down factor this method cannot take (the bench asks before building)."""
        if self.square_size and down_factor[0] != down_factor[1]:
            raise ValueError(f"{name} takes a square down_factor (its window side / stride), got {down_factor}")


#: The methods, in the order the bench and notebook 06 show them.
METHODS: dict[str, AttentionMethod] = {
    "dense": AttentionMethod(
        "dense (non-local)", "Non-local Neural Networks, https://arxiv.org/abs/1711.07971",
        lambda channels, keys, kernel, size, layer: DenseAttention(channels, keys, kernel)),
    "isa": AttentionMethod(
        "ISA", "Interlaced Sparse Self-Attention for Semantic Segmentation, https://arxiv.org/abs/1907.12273",
        lambda channels, keys, kernel, size, layer: ISAModule(channels, keys, size, kernel)),
    "ccnet": AttentionMethod(
        "criss-cross (CCNet)", "CCNet: Criss-Cross Attention for Semantic Segmentation, "
        "https://arxiv.org/abs/1811.11721",
        lambda channels, keys, kernel, size, layer: CrissCrossAttention(channels, keys, kernel),
        head=MethodHead("criss-cross attention, twice with shared weights (CCNet's R = 2)", 2, layers=1,
                        recurrences=2)),
    "axial": AttentionMethod(
        "axial", "Axial Attention in Multidimensional Transformers, https://arxiv.org/abs/1912.12180",
        lambda channels, keys, kernel, size, layer: AxialAttention(channels, keys, kernel),
        head=MethodHead("axial attention: a row hop, then a column hop", 2, layers=1)),
    "window": AttentionMethod(
        "window (Swin)", "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows, "
        "https://arxiv.org/abs/2103.14030",
        lambda channels, keys, kernel, size, layer: WindowAttention(
            channels, keys, size[0], size[0] // 2 if layer == 2 else 0, kernel),
        square_size=True,
        head=MethodHead("window attention, plain then shifted windows of window_size (Swin)", 2,
                        size_field="window_size")),
    "strided": AttentionMethod(
        "strided (Sparse Tr.)", "Generating Long Sequences with Sparse Transformers, "
        "https://arxiv.org/abs/1904.10509",
        lambda channels, keys, kernel, size, layer: StridedAttention(channels, keys, size[0], kernel),
        square_size=True,
        head=MethodHead("strided attention (block + lattice of down_factor), two layers", 2)),
}


def build_attention(method: str, channels: int = 512, key_channels: int = 256, kernel: Kernel = "matmul",
                    size: int | tuple[int, int] = 8, layer: int = 1) -> PatternAttention:
    """Layer ``layer`` (1 or 2) of ``method``. ``size`` is the one geometry knob: ISA's ``down_factor``
    (``size x size``, or a pair), the window side and the stride, so that a window is ISA's short-range block
    and the strided lattice its long-range group."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    down_factor = (size, size) if isinstance(size, int) else tuple(size)
    if min(down_factor) < 1 or layer not in (1, 2):
        raise ValueError(f"size must be >= 1 and layer 1 or 2, got size={size}, layer={layer}")
    METHODS[method].check_down_factor(method, down_factor)
    return METHODS[method].build(channels, key_channels, kernel, down_factor, layer)
