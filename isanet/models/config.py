"""``ISANetConfig``: every architectural choice of an ISANet in one dataclass, stored in checkpoint meta."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from isanet.models.attention import KERNELS, Kernel
from isanet.models.heads import HEADS

DEPTHS = (10, 18, 50, 101)


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
        object.__setattr__(self, "down_factor", tuple(self.down_factor))
        problems = []
        if self.depth not in DEPTHS:
            problems.append(f"depth must be one of {DEPTHS}, got {self.depth!r}")
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            problems.append(f"num_classes must be a positive integer, got {self.num_classes!r}")
        for name in ("backbone_width", "channels", "isa_channels", "aux_channels", "window_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if len(self.down_factor) != 2 or min(self.down_factor) < 1:
            problems.append(f"down_factor must be two positive integers, got {self.down_factor!r}")
        if self.head not in HEADS:
            problems.append(f"head must be one of {tuple(HEADS)}, got {self.head!r}")
        if self.kernel not in KERNELS:
            problems.append(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
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


#: The architecture :meth:`ISANetConfig.tiny` sets (classes aside): also the trainer's ``model_overrides`` for
#: the sample fine-tune, whose classes come from its data set.
TINY = dict(depth=18, channels=64, isa_channels=32, aux_channels=32)
