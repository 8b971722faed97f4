"""The efficient attentions of ISA's time side by side, on the projections of one dense block.

*Interlaced Sparse Self-Attention for Semantic Segmentation*, Huang et al., arXiv:1907.12273, compared with:
the non-local block (arXiv:1711.07971, :class:`~isanet.models.patterns.DenseAttention`), criss-cross attention
(CCNet, arXiv:1811.11721, :mod:`isanet.models.criss_cross`), axial attention (arXiv:1912.12180,
:mod:`isanet.models.axial`), windows (Swin, arXiv:2103.14030, :mod:`isanet.models.window`) and the strided
pattern of the Sparse Transformer (arXiv:1904.10509, :mod:`isanet.models.strided`).

Every module owns :class:`~isanet.models.self_attention.SelfAttentionBlock` projections (one block per hop),
so the methods differ only in which affinities they compute. One *layer* is one module: for ISA and axial that
is two hops (ISA: long then short range; axial: row then column), for the others one. The second layer of
``window`` uses shifted windows, as Swin alternates them; every other method repeats itself.
"""

from __future__ import annotations

from isanet.models.axial import AxialAttention
from isanet.models.criss_cross import CrissCrossAttention
from isanet.models.interlaced import ISAModule
from isanet.models.patterns import DenseAttention, PatternAttention
from isanet.models.self_attention import Kernel
from isanet.models.strided import StridedAttention
from isanet.models.window import WindowAttention

#: The methods, in the order the bench and notebook 06 show them.
METHODS: tuple[str, ...] = ("dense", "isa", "ccnet", "axial", "window", "strided")


def build_attention(method: str, channels: int = 512, key_channels: int = 256, kernel: Kernel = "matmul",
                    size: int = 8, layer: int = 1) -> PatternAttention:
    """Layer ``layer`` (1 or 2) of ``method``. ``size`` is the one geometry knob: ISA's ``down_factor``
    (``size x size``), the window side and the stride, so that a window is ISA's short-range block and the
    strided lattice its long-range group."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if size < 1 or layer not in (1, 2):
        raise ValueError(f"size must be >= 1 and layer 1 or 2, got size={size}, layer={layer}")
    if method == "dense":
        return DenseAttention(channels, key_channels, kernel)
    if method == "isa":
        return ISAModule(channels, key_channels, (size, size), kernel)
    if method == "ccnet":
        return CrissCrossAttention(channels, key_channels, kernel)
    if method == "axial":
        return AxialAttention(channels, key_channels, kernel)
    if method == "window":
        return WindowAttention(channels, key_channels, size, size // 2 if layer == 2 else 0, kernel)
    return StridedAttention(channels, key_channels, size, kernel)
