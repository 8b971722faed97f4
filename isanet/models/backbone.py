"""ResNet-V1c with dilated D8 stages: the backbone of every published ISANet.

*Deep Residual Learning for Image Recognition*, He et al., arXiv:1512.03385; the "C" variant's deep stem from
*Bag of Tricks for Image Classification with Convolutional Neural Networks*, He et al., arXiv:1812.01187.
Matches mmsegmentation 1.2.2 ``mmseg/models/backbones/resnet.py`` (``ResNetV1c``, ``contract_dilation=True``,
``strides=(1, 2, 1, 1)``, ``dilations=(1, 1, 2, 4)``).

V1c differs from the torchvision ResNet in its *deep stem* (three 3x3 convs, 32-32-64 channels, instead of
one 7x7) and keeps the stride on the 3x3 conv of each bottleneck ("pytorch" style). "D8" replaces the
strides of the last two stages by dilations (1, 1, 2, 4), so the output stride is 8 and the attention runs
on a 1/8-resolution map. Parameter names follow mmsegmentation's so its checkpoints load as they are.
"""

from __future__ import annotations

import torch
from torch import nn

#: Blocks per stage for each supported depth. 18 and 10 (one block a stage) are not in the published zoo: 18 is
#: the fast smoke-test model, 10 the teaching model, whose receptive field is small enough that a context task
#: needs the attention head (see :mod:`isanet.data.context`).
STAGE_BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
STRIDES = (1, 2, 1, 1)
DILATIONS = (1, 1, 2, 4)
#: The backbone's output stride: 4 (stem and max pool) times stage 2's 2; stages 3 and 4 dilate instead.
OUTPUT_STRIDE = 8


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, dilated) -> 1x1 with a residual connection (ResNet-50/101)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def conv_bn_relu_stem(in_channels: int, stem_channels: int) -> nn.Sequential:
    """The V1c deep stem; indices 0/1, 3/4, 6/7 are the conv/BN pairs named in checkpoints."""
    half = stem_channels // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, half, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(half),
        nn.ReLU(inplace=True),
        nn.Conv2d(half, half, 3, padding=1, bias=False),
        nn.BatchNorm2d(half),
        nn.ReLU(inplace=True),
        nn.Conv2d(half, stem_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(stem_channels),
        nn.ReLU(inplace=True),
    )


def make_stage(block: type[nn.Module], inplanes: int, planes: int, num_blocks: int, stride: int,
               dilation: int) -> nn.Sequential:
    """One residual stage. A dilated stage's first block uses half its dilation (mmseg's
    ``contract_dilation=True`` in ResNetV1c), so the receptive field grows smoothly from the previous stage."""
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out_channels:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out_channels, 1, stride, bias=False),
                                   nn.BatchNorm2d(out_channels))
    first_dilation = dilation // 2 if dilation > 1 else dilation
    blocks = [block(inplanes, planes, stride, first_dilation, downsample)]
    blocks += [block(out_channels, planes, 1, dilation, None) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)


class ResNetV1c(nn.Module):
    """Dilated ResNet-V1c returning the outputs of its four stages (strides 4, 8, 8, 8)."""

    def __init__(self, depth: int = 50, in_channels: int = 3, stem_channels: int = 64, base_channels: int = 64):
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(STAGE_BLOCKS)}, got {depth}")
        self.depth = depth
        block = BasicBlock if depth < 50 else Bottleneck
        self.stem = conv_bn_relu_stem(in_channels, stem_channels)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = stem_channels
        self.stage_channels: list[int] = []
        for index, num_blocks in enumerate(STAGE_BLOCKS[depth]):
            planes = base_channels * 2**index
            stage = make_stage(block, inplanes, planes, num_blocks, STRIDES[index], DILATIONS[index])
            self.add_module(f"layer{index + 1}", stage)
            inplanes = planes * block.expansion
            self.stage_channels.append(inplanes)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.stem(x))
        outputs = []
        for index in range(len(self.stage_channels)):
            x = getattr(self, f"layer{index + 1}")(x)
            outputs.append(x)
        return outputs
