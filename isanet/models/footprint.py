"""The memory estimate: an upper bound of the peak bytes of a forward pass, from sizes alone, before anything is
allocated.

Everything that builds tensors from a user's sizes asks this module first and refuses what passes its memory cap:
``isanet bench attention`` and ``bench model``, ``predict``, ``eval``, ``export``, the attention explorer,
:func:`isanet.predict` and the :class:`~isanet.evaluation.inference.Predictor`. It is arithmetic on the config and
the sizes; no tensor is made. Catching an out-of-memory afterwards is too late (the kernel may kill the process
first, or the machine swaps for minutes), and a live-tensor cap (:mod:`isanet.analysis.memory`) stops only the op
that would pass it, after everything before it was allocated.

What is counted, in float32 (a bf16 or fp16 run needs less):

* **the backbone** (ResNet-V1c D8): the stem, then each stage while the earlier stages' outputs stay alive (the
  heads read them), a residual block holding its input and four tensors of its output's size;
* **the head**: its 3x3 ``in_conv``, the context, ``out_conv`` on ``[context, x]``, the classifier, and the logits
  resized to the input;
* **the context**: the attention modules of the head (``HeadSpec.attention`` of :data:`~isanet.models.heads.HEADS`,
  built on the ``meta`` device to read their geometry): the map they compute on
  (:meth:`~isanet.models.efficient.base.PatternAttention.padded_size`; ISA's is :class:`~isanet.models.isa.Partition`'s
  padding) and the affinity entries they form. The ``matmul`` kernel materialises the affinity (the logits and
  their softmax: two copies), ``sdpa``'s fused kernel does not (unless a mask sends it to PyTorch's unfused path),
  and a module without an sdpa form (criss-cross, strided) holds several copies;
* **a prediction**: every slide window in turn (counted: at most :data:`MAX_CALLS` model calls a picture), their
  logits summed at the input size, and with multi-scale + flip every scale, its probabilities resized to the
  picture and summed.

``tests/models/test_footprint.py`` holds every bound against the peak that
:func:`isanet.analysis.memory.peak_memory` measures on small maps, for every head and kernel: never below it, and
within a few times above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch

from isanet.models.attention import PATTERN_KERNELS
from isanet.models.config import ISANetConfig
from isanet.models.efficient.base import PatternAttention
from isanet.models.heads import HEADS
from isanet.models.segmentor import ISANet
from isanet.models.zoo import TestSettings, window_grid

FLOAT = 4  # bytes of a float32 element: every estimate counts float32
GIB = 2**30
#: The cap the commands (``--memory-cap-gb``) and the Python API (``memory_cap_bytes``) apply unless told
#: otherwise: within a laptop's memory, and above every published test setting (the largest, a Cityscapes R-101
#: whole 2048 x 1024 picture, is estimated at about 4 GiB).
DEFAULT_CAP_GB = 8.0
DEFAULT_CAP_BYTES = int(DEFAULT_CAP_GB * GIB)
#: Model calls for one picture (slide windows times multi-scale + flip views): the published settings make at most
#: 56 (Cityscapes' 769 crops over its 1.75x view, twice for the flip); thousands more are a crop or stride typo
#: that would run for hours (a 1 x 1 crop over 2048 x 2048 is 4 million calls).
MAX_CALLS = 4096

#: Affinity copies (in float32 elements) a module holds at its peak: the ``matmul`` logits and their softmax; a
#: module that computes its affinities explicitly (no sdpa form: criss-cross, strided) also holds its parts, their
#: masked copies and the concatenation it takes the softmax of; ``flex`` makes its block mask from the whole-map
#: ``L x L`` mask (about 10 bytes an entry, measured), one hop at a time.
MATMUL_COPIES, EXPLICIT_COPIES, FLEX_COPIES = 2, 5, 3


class MemoryCapError(ValueError):
    """A call refused before anything was allocated: its estimated peak passes the memory cap, or it would make
    more than :data:`MAX_CALLS` model calls for one picture."""


@dataclass(frozen=True)
class Estimate:
    """An upper bound of the peak bytes of one call, and the model calls it makes."""

    what: str  # the call, for messages: "a whole 1024x2048 prediction"
    bytes: int
    calls: int = 1

    def check(self, cap_bytes: int | None, option: str = "memory_cap_bytes") -> Estimate:
        """This estimate, or a :class:`MemoryCapError` line when it makes too many model calls or passes
        ``cap_bytes`` (None: no cap); ``option`` names the cap where the user sets it."""
        if self.calls > MAX_CALLS:
            raise MemoryCapError(f"{self.what} takes {self.calls:,} model calls, more than the {MAX_CALLS:,} a "
                                 "picture may take (isanet.models.footprint.MAX_CALLS): a larger crop or stride")
        if cap_bytes is not None and self.bytes > cap_bytes:
            raise MemoryCapError(f"{self.what} needs about {size_text(self.bytes)} at its peak (estimated before "
                                 f"allocating), more than the memory cap of {size_text(cap_bytes)} ({option}): a "
                                 "smaller input, or a larger cap")
        return self


def cap_bytes(gigabytes: float | None) -> int | None:
    """A cap option in GiB as bytes; 0 or None is no cap."""
    return int(gigabytes * GIB) if gigabytes else None


def size_text(count: int) -> str:
    """``34.4 GiB``, or ``28 MiB`` below a GiB: what a refusal says."""
    return f"{count / GIB:.3g} GiB" if count >= GIB else f"{count / 2**20:.3g} MiB"


# ------------------------------------------------------------------------------------------ the attention

def attention_elements(module: PatternAttention, batch: int, height: int, width: int, backward: bool = False) -> int:
    """Float elements one call of an attention module on ``batch x C x height x width`` holds at its peak beyond
    its input (``backward``: forward and backward, parameter gradients included). ``module`` may live on the
    ``meta`` device: only its geometry, widths and kernel are read."""
    relation = module.relations()[0]
    channels, key_channels = relation.value_project.in_channels, relation.key_channels
    padded_h, padded_w = module.padded_size(height, width)
    pixels = batch * padded_h * padded_w
    kernel, hops = module.computed_with, len(module.relations())
    if kernel in PATTERN_KERNELS:  # the whole-map mask; with gradients on a CPU, the masked matmul of every hop
        affinity, copies = (hops if backward else 1) * pixels * padded_h * padded_w, FLEX_COPIES
    else:
        affinity = batch * module.affinity_entries(height, width)
        fused = kernel == "sdpa" and not module.sdpa_masked
        copies = EXPLICIT_COPIES if not module.uses_sdpa else 0 if fused else MATMUL_COPIES
    if not backward:
        return pixels * (8 * channels + 4 * key_channels) + copies * affinity
    weights = sum(parameter.numel() for parameter in module.parameters())
    # autograd keeps every hop's intermediates for the backward, then their gradients (a fused kernel's
    # backward recomputes the affinity in tiles: it forms none)
    return (hops * pixels * (12 * channels + 6 * key_channels)
            + (copies + 1 if copies else 0) * affinity + 2 * weights)


@lru_cache(maxsize=64)
def _attention_modules(config: ISANetConfig) -> tuple[PatternAttention, ...]:
    """The attention modules of ``config``'s head, built once on the ``meta`` device (geometry only)."""
    attention = HEADS[config.head].attention
    if attention is None:
        return ()
    with torch.device("meta"):
        return tuple(attention(config))


def _context_elements(config: ISANetConfig, height: int, width: int, keep_attention: bool) -> int:
    """Peak float elements of the head's context on its ``channels x height x width`` input, that input aside;
    ``keep_attention``: ``forward_with_attention``, which computes explicitly and keeps every hop's weights."""
    if keep_attention and HEADS[config.head].attention_weights:
        modules = _attention_modules(config.replace(kernel="matmul"))
        kept = sum(module.affinity_entries(height, width) for module in modules)
    else:
        modules, kept = _attention_modules(config), 0
    # each module reads the previous one's output and makes the next: two maps carried, the worst module's work
    return 2 * config.channels * height * width + kept + max(
        (attention_elements(module, 1, height, width) for module in modules), default=0)


# ------------------------------------------------------------------------------------------ the model

def _half(side: int) -> int:
    """A side after a stride-2 convolution or pooling with padding (kernel 3, padding 1; or 1x1): ``ceil(side / 2)``."""
    return (side + 1) // 2


def _backbone_elements(config: ISANetConfig, height: int, width: int) -> tuple[int, int]:
    """``(peak, the four stage outputs)`` in float elements of one image through ResNet-V1c D8 (the image aside)."""
    width_ = config.backbone_width
    expansion = 4 if config.depth >= 50 else 1
    side2 = (_half(height), _half(width))
    side4 = (_half(side2[0]), _half(side2[1]))
    side8 = (_half(side4[0]), _half(side4[1]))
    area2, area4, area8 = (side[0] * side[1] for side in (side2, side4, side8))
    peak = max(2 * width_ * area2, width_ * (area2 + area4))  # a stem conv and its BatchNorm; the max-pool
    kept = 0
    for index in range(4):
        out = width_ * 2**index * expansion * (area4 if index == 0 else area8)
        entry = width_ * area4 if index == 0 else 0  # the pooled map (later stages read a kept output)
        peak = max(peak, kept + entry + 5 * out)  # a block: its input, residual, and three maps of its output
        kept += out
    return peak, kept


def forward_bytes(config: ISANetConfig, height: int, width: int, batch: int = 1,
                  keep_attention: bool = False) -> int:
    """Peak bytes of ``ISANet(config)`` in eval mode, without gradients, on a ``batch x 3 x height x width``
    input, the input and the logits included. ``keep_attention``: the attention kept as
    :func:`isanet.analysis.probe.capture` keeps it (``forward_with_attention``)."""
    backbone, features = _backbone_elements(config, height, width)
    feature_h, feature_w = _half(_half(_half(height))), _half(_half(_half(width)))
    pixels, channels, classes = feature_h * feature_w, config.channels, config.num_classes
    head = features + max(
        2 * channels * pixels,  # in_conv: the conv and its BatchNorm
        channels * pixels + _context_elements(config, feature_h, feature_w, keep_attention),
        6 * channels * pixels,  # out_conv: x, the context, their concatenation, the conv and its BatchNorm
        (channels + classes) * pixels + classes * height * width)  # the classifier, the logits at input size
    return FLOAT * batch * (3 * height * width + max(backbone, head))


def model_bytes(config: ISANetConfig) -> int:
    """Bytes of the model's weights and buffers (float32), from a model built on the ``meta`` device."""
    with torch.device("meta"):
        model = ISANet(config)
    return FLOAT * sum(tensor.numel() for tensor in model.state_dict().values())


def forward(config: ISANetConfig, height: int, width: int, batch: int = 1, keep_attention: bool = False,
            what: str | None = None) -> Estimate:
    """The :class:`Estimate` of one forward pass (:func:`forward_bytes`)."""
    return Estimate(what or f"a {height}x{width} forward of the model", forward_bytes(config, height, width, batch,
                                                                                      keep_attention))


def logits(config: ISANetConfig, height: int, width: int, batch: int = 1, mode: str = "whole",
           crop_size: tuple[int, int] | None = None, stride: tuple[int, int] | None = None) -> Estimate:
    """What the logits of a ``batch x 3 x height x width`` batch need (:func:`isanet.predict`,
    :meth:`Predictor.logits <isanet.evaluation.inference.Predictor.logits>`): one whole forward, or every slide
    window in turn with the sum of their logits and the window count at the input size."""
    if mode == "whole":
        return forward(config, height, width, batch, what=f"a whole {height}x{width} prediction")
    rows, cols = window_grid(height, width, crop_size, stride)
    crop_h, crop_w = min(crop_size[0], height), min(crop_size[1], width)
    sums = FLOAT * batch * (config.num_classes + 1 + 3) * height * width  # logits' sum, count, the input
    return Estimate(f"a slide {height}x{width} prediction ({rows * cols} windows of {crop_h}x{crop_w})",
                    forward_bytes(config, crop_h, crop_w, batch) + sums, rows * cols)


def scores(config: ISANetConfig, settings: TestSettings, image_size: tuple[int, int],
           views: Sequence[tuple[int, int]], ms_flip: bool = False) -> Estimate:
    """What :meth:`Predictor.scores <isanet.evaluation.inference.Predictor.scores>` needs for a picture of
    ``image_size``: the logits of each view (its size in ``views``: the test-scale resize, or one per
    multi-scale ratio, each predicted twice with ``ms_flip``: as it is and mirrored), resized back to the
    picture; with ``ms_flip`` their probabilities and the running sum at the picture's size too."""
    height, width = image_size
    classes = config.num_classes
    each = [logits(config, *view, 1, settings.mode, settings.crop_size, settings.stride) for view in views]
    resized = FLOAT * classes * height * width * (3 if ms_flip else 1)  # resized logits, softmax, the sum
    # each view: its logits' estimate, the mirrored logits, the view's pixels and a normalisation temporary
    worst = max(estimate.bytes + FLOAT * (classes + 4) * math.prod(view) for estimate, view in zip(each, views))
    kind = "multi-scale + flip" if ms_flip else "single-scale"
    return Estimate(f"a {kind} prediction of a {height}x{width} picture",
                    worst + resized + 11 * height * width,  # + the picture (uint8) and its class ids (int64)
                    sum(estimate.calls for estimate in each) * (2 if ms_flip else 1))
