"""A faster copy of a model for inference: BatchNorm folded, and on CPU the backbone in oneDNN's blocked layout.

Measured on the 2-core AMD EPYC of this project (one thread, R-50-D8, 512x512; ``benchmarks/README.md``):

* **BatchNorm folding** (:func:`isanet.models.fold.fold_batchnorm`) removes one pass over every feature map per
  layer: a few percent in fp32, more in bf16 where the convolutions themselves are faster.
* **The blocked backbone** is the bigger step in fp32. PyTorch runs an ordinary (NCHW) CPU convolution either
  through oneDNN, reordering input and weights into its blocked ``nChw16c`` layout and back on *every* call, or,
  for 1x1 kernels on one thread, through its own im2col+GEMM path (``_slow_conv2d_forward``: half the R-50
  time). ``torch.utils.mkldnn.to_mkldnn`` prepacks the weights once, and the backbone's feature maps stay
  blocked from the first convolution to the last; only its four outputs come back as ordinary tensors for the
  heads (reshapes and attention need them). Measured 1.4x faster than the plain model, logits within 1e-6
  relative. Channels-last memory was measured too and gained ~2 % (noise level), so it is not used.

bf16 runs under autocast instead (:func:`isanet.runtime.autocast`): the blocked layout and autocast do not mix,
and autocast on the folded model was the faster of the two bf16 paths measured (1.08 s against 1.20 s).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from isanet.models.fold import fold_batchnorm


class BlockedBackbone(nn.Module):
    """A (BatchNorm-folded) backbone with its weights prepacked for oneDNN, taking and returning ordinary
    tensors: the input is converted to the blocked layout once, the stage outputs back once each."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        with warnings.catch_warnings():  # torch.utils.mkldnn is built on TorchScript, deprecated but still shipped
            warnings.simplefilter("ignore", DeprecationWarning)
            from torch.utils import mkldnn

            self.inner = mkldnn.to_mkldnn(backbone)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [stage.to_dense() for stage in self.inner(x.float().to_mkldnn())]


def blocked_layout_available(device: str | torch.device = "cpu") -> bool:
    return torch.device(device).type == "cpu" and torch.backends.mkldnn.is_available()


def optimize_for_inference(model: nn.Module, precision: str = "fp32", device: str | torch.device = "cpu") -> nn.Module:
    """A copy of ``model`` for eval-mode inference in ``precision`` on ``device`` (``model`` is untouched):
    BatchNorm folded, and for fp32 on CPU the blocked backbone. Same logits within 1e-5 relative (fp32); not
    trainable (no BatchNorm statistics); save checkpoints from the original."""
    fast = fold_batchnorm(model).to(device)
    if precision == "fp32" and blocked_layout_available(device) and hasattr(fast, "backbone"):
        fast.backbone = BlockedBackbone(fast.backbone)
    return fast
