"""The efficient attentions of ISA's time side by side, on the projections of one dense block: one registry.

*Interlaced Sparse Self-Attention for Semantic Segmentation*, Huang et al., arXiv:1907.12273, compared with:
the non-local block (arXiv:1711.07971, :class:`~isanet.models.patterns.DenseAttention`), criss-cross attention
(CCNet, arXiv:1811.11721, :mod:`isanet.models.criss_cross`), axial attention (arXiv:1912.12180,
:mod:`isanet.models.axial`), windows (Swin, arXiv:2103.14030, :mod:`isanet.models.window`) and the strided
pattern of the Sparse Transformer (arXiv:1904.10509, :mod:`isanet.models.strided`).

Every module owns :class:`~isanet.models.self_attention.SelfAttentionBlock` projections (one block per hop),
so the methods differ only in which affinities they compute. One *layer* is one module: for ISA and axial that
is two hops (ISA: long then short range; axial: row then column), for the others one. The second layer of
``window`` uses shifted windows, as Swin alternates them; every other method repeats itself.

:data:`METHODS` is the one list of them: the bench, the reach table, notebook 06's pictures and the CLI read
it, so a new method is one :class:`AttentionMethod` entry here (plus its module and its tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from isanet.models.axial import AxialAttention
from isanet.models.criss_cross import CrissCrossAttention
from isanet.models.interlaced import ISAModule
from isanet.models.patterns import DenseAttention, PatternAttention
from isanet.models.self_attention import Kernel
from isanet.models.strided import StridedAttention
from isanet.models.window import WindowAttention

#: ``(channels, key_channels, kernel, down_factor, layer) -> module``: how a method builds layer 1 or 2.
Builder = Callable[[int, int, Kernel, tuple[int, int], int], PatternAttention]


@dataclass(frozen=True)
class AttentionMethod:
    """One efficient attention as the bench and notebook 06 show it."""

    label: str  # a few words for titles and tables
    paper: str  # the paper's title and arXiv link
    build: Builder
    square_size: bool = False  # takes one side (window side, stride): the down factor must be square

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
        lambda channels, keys, kernel, size, layer: CrissCrossAttention(channels, keys, kernel)),
    "axial": AttentionMethod(
        "axial", "Axial Attention in Multidimensional Transformers, https://arxiv.org/abs/1912.12180",
        lambda channels, keys, kernel, size, layer: AxialAttention(channels, keys, kernel)),
    "window": AttentionMethod(
        "window (Swin)", "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows, "
        "https://arxiv.org/abs/2103.14030",
        lambda channels, keys, kernel, size, layer: WindowAttention(
            channels, keys, size[0], size[0] // 2 if layer == 2 else 0, kernel),
        square_size=True),
    "strided": AttentionMethod(
        "strided (Sparse Tr.)", "Generating Long Sequences with Sparse Transformers, "
        "https://arxiv.org/abs/1904.10509",
        lambda channels, keys, kernel, size, layer: StridedAttention(channels, keys, size[0], kernel),
        square_size=True),
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
