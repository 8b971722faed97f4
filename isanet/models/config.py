"""``ISANetConfig``: every architectural choice of an ISANet in one dataclass, stored in checkpoint meta."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from isanet.models.attention import KERNELS, Kernel
from isanet.models.heads import HEADS

DEPTHS = (10, 18, 50, 101)

# The bounds of every size, each with its reason. A config also comes from a checkpoint's meta, which is
# untrusted: a typo or a hostile file must be refused here, before a weight, a padded map or an affinity is
# allocated (a 3 KB file claiming ``channels=30000`` would otherwise build 7 GB of weights).
#: Classes: ADE20K-Full, the largest label set of segmentation's benchmarks, has 847; the full-size logits of a
#: 2048 x 1024 picture already take 8 GiB at this bound.
MAX_CLASSES = 1024
#: Head widths (``channels``, ``isa_channels``, ``aux_channels``): four times the published 512; the head's
#: convolutions grow with the square of the width (about 100M weights, 0.4 GB, at the bound).
MAX_HEAD_CHANNELS = 2048
#: Backbone width (mmseg ``base_channels``): twice the published 64 (Wide ResNet's widening), where R-101 holds
#: about 170M weights (0.7 GB); at least 2, since the deep stem's first convolutions take half of it.
MIN_BACKBONE_WIDTH, MAX_BACKBONE_WIDTH = 2, 128
#: ISA's block side and the window side: the largest feature map the kit makes is 1024 pixels a side (the
#: largest image side, 8192 = ``isanet.limits.MAX_IMAGE_SIDE``, over the output stride 8); a larger block only
#: pads every map with zeros (the published block is 8).
MAX_BLOCK_SIDE = 1024
BLOCK_REASON = "a larger block than the largest feature map only pads it with zeros"
#: ``(field, lowest, highest, why)`` of every integer size field but ``down_factor`` (a pair).
SIZE_BOUNDS = (
    ("num_classes", 1, MAX_CLASSES, "ADE20K-Full, the largest benchmark label set, has 847"),
    ("backbone_width", MIN_BACKBONE_WIDTH, MAX_BACKBONE_WIDTH,
     "the deep stem's first convolutions take half of it; twice the published 64"),
    ("channels", 1, MAX_HEAD_CHANNELS, "four times the published 512"),
    ("isa_channels", 1, MAX_HEAD_CHANNELS, "four times the published 512"),
    ("aux_channels", 1, MAX_HEAD_CHANNELS, "four times the published 512"),
    ("window_size", 1, MAX_BLOCK_SIDE, BLOCK_REASON),
)


@dataclass(frozen=True)
class ISANetConfig:
    """The architecture of one ISANet. The defaults are the published Cityscapes R-50-D8 model."""

    depth: int = 50  # ResNet-V1c depth: 50 or 101 as published; 18 (smoke tests) and 10 (teaching) are not in the zoo
    backbone_width: int = 64  # the backbone's stem and first-stage width (mmseg ``base_channels``), doubled per stage
    num_classes: int = 19  # classifier outputs: 19 Cityscapes, 150 ADE20K, 21 Pascal VOC
    align_corners: bool = False  # bilinear logit resizing; True only in the Cityscapes 769x769 configs
    down_factor: tuple[int, int] = (8, 8)  # ISA block size, the paper's (P_h, P_w) = (loc_h, loc_w)
    channels: int = 512  # head width after the 3x3 in_conv (mmseg ``channels``)
    isa_channels: int = 256  # query/key width of each attention block (mmseg ``isa_channels``)
    aux_channels: int = 256  # width of the FCN auxiliary head's 3x3 conv
    head: str = "isa"  # a name in isanet.models.heads.HEADS: "isa"; "dense": one self-attention over
    #                    the whole map, same projections; "none": no context module, the ablation; "ccnet",
    #                    "axial", "window", "strided": notebook 06's attentions, two hops each
    window_size: int = 4  # head="window" only: the window side, smaller than the 16x16-32x32 maps it is used on
    kernel: Kernel = "matmul"  # "matmul" forms the affinity (can show it); "sdpa" PyTorch's fused kernel; "flex"
    #                            PyTorch's block-sparse FlexAttention (inference on a CPU)
    auxiliary: bool = True  # build the FCN auxiliary head (training signal on stage 3; unused at inference)

    def __post_init__(self) -> None:
        if isinstance(self.down_factor, (list, tuple)):  # JSON meta stores a list
            object.__setattr__(self, "down_factor", tuple(self.down_factor))
        problems = []
        if not _is_int(self.depth) or self.depth not in DEPTHS:
            problems.append(f"depth must be one of {DEPTHS}, got {self.depth!r}")
        for name, low, high, reason in SIZE_BOUNDS:
            problems += _bound_problem(name, getattr(self, name), low, high, reason)
        if not (isinstance(self.down_factor, tuple) and len(self.down_factor) == 2
                and all(_is_int(side) and side >= 1 for side in self.down_factor)):
            problems.append(f"down_factor must be two positive integers, got {self.down_factor!r}")
        elif max(self.down_factor) > MAX_BLOCK_SIDE:
            problems.append(f"down_factor must be at most {MAX_BLOCK_SIDE} a side ({BLOCK_REASON}), got "
                            f"{self.down_factor!r}")
        if not isinstance(self.head, str) or self.head not in HEADS:
            problems.append(f"head must be one of {tuple(HEADS)}, got {self.head!r}")
        if not isinstance(self.kernel, str) or self.kernel not in KERNELS:
            problems.append(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        for name in ("align_corners", "auxiliary"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be True or False, got {getattr(self, name)!r}")
        if problems:
            raise ValueError("ISANetConfig: " + "; ".join(problems))

    @classmethod
    def tiny(cls, **overrides) -> ISANetConfig:
        """A small R-18 model (5 classes, narrow heads) that trains and runs in seconds on a CPU: the one the
        tests, the notebooks' sample checkpoint and the sample fine-tune use."""
        return cls(**{**TINY, "num_classes": 5, **overrides})

    def replace(self, **overrides) -> ISANetConfig:
        """A copy with some fields changed (checked like any new config)."""
        unknown = set(overrides) - {field.name for field in fields(self)}
        if unknown:
            raise ValueError(f"unknown ISANetConfig field(s) {sorted(unknown)}; "
                             f"the fields are {[field.name for field in fields(self)]}")
        return replace(self, **overrides)

    def to_dict(self) -> dict:
        """Plain JSON-able values (``down_factor`` as a list), for checkpoint meta."""
        values = asdict(self)
        values["down_factor"] = list(self.down_factor)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> ISANetConfig:
        """The config stored by :meth:`to_dict` (unknown keys are an error, not silently dropped)."""
        return cls().replace(**values)


def _is_int(value) -> bool:
    """A whole number, and not a bool (``True`` is an ``int`` to Python, never a size to a model)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _bound_problem(name: str, value, low: int, high: int, reason: str) -> list[str]:
    """The one-line problem with size field ``name`` (none when ``value`` is a whole number in its bounds)."""
    if not _is_int(value) or value < 1:
        return [f"{name} must be a positive integer, got {value!r}"]
    if not low <= value <= high:
        return [f"{name} must be {low} to {high} ({reason}), got {value!r}"]
    return []


#: The architecture :meth:`ISANetConfig.tiny` sets (classes aside): also the trainer's ``model_overrides`` for
#: the sample fine-tune, whose classes come from its data set.
TINY = dict(depth=18, channels=64, isa_channels=32, aux_channels=32)
