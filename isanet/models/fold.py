"""BatchNorm folded into the convolution before it: the same eval-mode function with one op fewer per layer.

In eval mode a BatchNorm is a fixed per-channel affine map, ``y = (x - mean) / sqrt(var + eps) * gamma + beta``,
and a convolution is linear, so the pair is one convolution with weight ``W * s`` (``s = gamma / sqrt(var +
eps)`` per output channel) and bias ``(b - mean) * s + beta``. Every BatchNorm of ISANet follows a convolution
(ResNet blocks, the deep stem, the downsample shortcuts, every ``ConvBNReLU`` of the heads), so the folded model
skips ~100 passes over a feature map per forward (R-50). The fold is computed in float64, so the folded
model's fp32 logits agree with the original's to float32 rounding (tested within 1e-5 relative).

It is for inference only: the folded model has no running statistics to update and its state dict has other
keys; checkpoints are always saved from the unfolded model.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One convolution computing ``bn(conv(x))`` with ``bn``'s running statistics (eval mode).

    PyTorch's own ``fuse_conv_bn_weights`` does the arithmetic; it is given float64 copies so that the fold
    adds no rounding of its own, and the result is cast back to the convolution's dtype."""
    def double(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else tensor.detach().double()

    weight, bias = fuse_conv_bn_weights(double(conv.weight), double(conv.bias), double(bn.running_mean),
                                        double(bn.running_var), bn.eps, double(bn.weight), double(bn.bias))
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    folded = folded.to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        folded.weight.copy_(weight)  # out x in x kh x kw, each output channel scaled by gamma / sqrt(var + eps)
        folded.bias.copy_(bias)
    return folded


def _conv_before(module: nn.Module, bn_name: str) -> str | None:
    """Name of the convolution whose output feeds BatchNorm ``bn_name`` in ``module``: the previous entry of a
    ``Sequential``, or the ``conv``/``convN`` beside a ``bn``/``bnN`` (mmseg's naming), if it is a Conv2d."""
    if isinstance(module, nn.Sequential):
        names = [name for name, _ in module.named_children()]
        index = names.index(bn_name)
        candidate = names[index - 1] if index > 0 else None
    else:
        candidate = "conv" + bn_name.removeprefix("bn") if bn_name.startswith("bn") else None
    if candidate is None or not isinstance(getattr(module, candidate, None), nn.Conv2d):
        return None
    return candidate


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every BatchNorm that follows a convolution folded into it (the
    BatchNorm becomes an ``Identity``); ``model`` itself is left as it was. BatchNorms without a convolution
    before them are kept."""
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        for name, child in list(module.named_children()):
            if not isinstance(child, nn.BatchNorm2d) or not child.track_running_stats:
                continue
            conv_name = _conv_before(module, name)
            if conv_name is None:
                continue
            setattr(module, conv_name, fold_conv_bn(getattr(module, conv_name), child))
            setattr(module, name, nn.Identity())
    return folded
