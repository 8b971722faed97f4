"""Attention probes: what one pixel attends to in ISA's two stages, their composition, and dense attention.

ISA never forms a pixel's attention over the whole map; it forms two sparse rows. This module captures them
from a real forward pass (random weights, trained ones or a zoo checkpoint) and puts them back on the map:

* ``long_range``: the pixel's weights over its long-range group (one pixel per block, stride ``loc``);
* ``short_range``: its weights over its own ``loc_h x loc_w`` block;
* ``composed``: the two-hop map over the whole padded map. The pixel ``p`` (a query of the second stage)
  reads each member ``q`` of its block, and ``q`` had read its long-range group in the first stage, so
  ``composed[r] = sum_q short[p, q] * long[q, r]``. Every ``r`` lies in the long-range group of exactly one
  ``q`` of the block (the member with ``r``'s in-block offset), so the sum has one term and the map is
  positive everywhere: every pixel reaches every other in two hops. It is attention flow through the weights
  only (the projections between the stages are not linear), the analogue of attention rollout;
* ``dense``: the row of a dense ``SelfAttentionBlock`` over the whole unpadded map (by default the model's own
  ``global_relation`` applied to the whole map, or the ``relation`` of a dense head), computed for the one row
  asked for, so a ``128 x 128`` map does not need the 1 GiB affinity.

Each map comes at feature resolution (``h x w``, the padding cropped away) and upsampled to the image
(bilinear, with the model's ``align_corners``: the same resize that takes the logits to the image).

**Padding.** mmseg pads the map with zeros *before* the projections, so a padded position is a real key: its
key is the projection of a zero vector (``ReLU(BN(0))``, generally not zero) and it competes in the softmax
like any pixel. The share of a map's mass that lands on padded positions is kept in
:attr:`AttentionMap.padding_mass`; the cropped map sums to ``1 - padding_mass``. It is zero when ``h`` and
``w`` are multiples of the down factor, and for the dense map (which runs on the unpadded map). It can be
most of a map: on an ``11 x 13`` map (padded to ``16 x 16``) pixel ``(3, 5)`` has three padded long-range
partners out of four, and with random weights they take about 70 % of its first-stage weight.
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from isanet.evaluation.inference import evaluating
from isanet.models import footprint
from isanet.models.attention import SelfAttentionBlock
from isanet.models.config import ISANetConfig
from isanet.models.heads import ContextHead, DenseHead, ISAHead
from isanet.models.isa import ISAWeights, Partition, Step, interlaced, member_positions
from isanet.models.layers import to_tokens
from isanet.models.optimize import optimize_for_inference
from isanet.runtime import autocast, resolve_precision

Coords = Literal["feature", "image"]


# ------------------------------------------------------------------------------------ coordinate mapping

def feature_to_image(point: tuple[int, int], feature_size: tuple[int, int], image_size: tuple[int, int],
                     align_corners: bool = False) -> tuple[float, float]:
    """Image ``(row, col)`` (float) where the bilinear resize of the logits samples feature ``point`` exactly.

    ``align_corners=False``: feature ``i`` sits at image ``(i + 0.5) * H / h - 0.5``; ``True``: at
    ``i * (H - 1) / (h - 1)``. This is the resize :meth:`isanet.models.segmentor.ISANet.upsample` applies.
    """
    return tuple(_axis_to_image(i, f, s, align_corners) for i, f, s in zip(point, feature_size, image_size))


def image_to_feature(point: tuple[float, float], image_size: tuple[int, int], feature_size: tuple[int, int],
                     align_corners: bool = False) -> tuple[int, int]:
    """The feature pixel nearest to image ``point`` under the same resize (the inverse of
    :func:`feature_to_image`, rounded and clamped to the map)."""
    return tuple(_axis_to_feature(v, s, f, align_corners) for v, s, f in zip(point, image_size, feature_size))


def _axis_to_image(index: float, feature: int, image: int, align_corners: bool) -> float:
    if align_corners:
        return index * (image - 1) / (feature - 1) if feature > 1 else 0.0
    return (index + 0.5) * image / feature - 0.5


def _axis_to_feature(value: float, image: int, feature: int, align_corners: bool) -> int:
    if align_corners:
        position = value * (feature - 1) / (image - 1) if image > 1 else 0.0
    else:
        position = (value + 0.5) * feature / image - 0.5
    return int(min(max(np.floor(position + 0.5), 0), feature - 1))


def upsample_map(values: np.ndarray | torch.Tensor, size: tuple[int, int],
                 align_corners: bool = False) -> np.ndarray:
    """An ``h x w`` map resized bilinearly to ``size``, as the model resizes its logits."""
    tensor = torch.as_tensor(np.asarray(values, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=tuple(size), mode="bilinear", align_corners=align_corners)[0, 0].numpy()


# ------------------------------------------------------------------------------- maps from the weights

def _place(by_offset_block: torch.Tensor, p: Partition) -> torch.Tensor:
    """``(loc_h*loc_w) x (glb_h*glb_w)`` values indexed [in-block offset, block] -> the padded map."""
    placed = by_offset_block.new_zeros(p.padded_h * p.padded_w)
    placed[member_positions(p).flatten()] = by_offset_block.flatten()  # each member to its padded position
    return placed.view(p.padded_h, p.padded_w)  # HpWp -> Hp x Wp


def _member_ids(p: Partition, row: int, col: int) -> tuple[int, int]:
    """(in-block offset = long-range group, block = short-range group) of unpadded ``(row, col)``."""
    if not (0 <= row < p.height and 0 <= col < p.width):
        raise ValueError(f"pixel ({row}, {col}) is outside the {p.height}x{p.width} feature map")
    return p.groups_of(row, col)


def long_range_map(attention: ISAWeights, row: int, col: int, image_index: int = 0) -> torch.Tensor:
    """Padded map of the pixel's first-stage weights (non-zero on its long-range group only)."""
    p = attention.partition
    offset, block = _member_ids(p, row, col)
    grid = attention.long_range.new_zeros(p.num_long_range_groups, p.num_short_range_groups)
    grid[offset] = attention.long_range[image_index, offset, block]
    return _place(grid, p)


def short_range_map(attention: ISAWeights, row: int, col: int, image_index: int = 0) -> torch.Tensor:
    """Padded map of the pixel's second-stage weights (non-zero on its block only)."""
    p = attention.partition
    offset, block = _member_ids(p, row, col)
    grid = attention.short_range.new_zeros(p.num_long_range_groups, p.num_short_range_groups)
    grid[:, block] = attention.short_range[image_index, block, offset]
    return _place(grid, p)


def composed_map(attention: ISAWeights, row: int, col: int, image_index: int = 0) -> torch.Tensor:
    """Padded two-hop map ``composed[r] = short[p, q(r)] * long[q(r), r]``, ``q(r)`` the member of the pixel's
    block with ``r``'s in-block offset (see the module docstring). Sums to 1 over the padded map."""
    p = attention.partition
    offset, block = _member_ids(p, row, col)
    short_row = attention.short_range[image_index, block, offset]    # over the block's members (offsets)
    long_rows = attention.long_range[image_index, :, block]           # member `offset` of each group -> blocks
    return _place(short_row[:, None] * long_rows, p)


def recompute_isa_context(x: torch.Tensor, attention: ISAWeights, global_relation: SelfAttentionBlock,
                          local_relation: SelfAttentionBlock) -> torch.Tensor:
    """The ISA context of ``x`` rebuilt from captured weights and the value/output projections only.

    That it equals the forward pass shows the captured matrices are the whole of the attention: nothing else
    mixes positions. ``x`` is the (unpadded) input of the ISA operation.
    """
    p = attention.partition

    def replay(relation: SelfAttentionBlock, weights: torch.Tensor) -> Step:
        def step(grouped: torch.Tensor) -> torch.Tensor:
            value = to_tokens(relation.value_project(grouped))
            # n x groups x K x K -> (n*groups) x K x K, the grouped maps' order
            context = torch.matmul(weights.reshape(-1, *weights.shape[-2:]), value)
            return relation.project(context, *grouped.shape[2:])
        return step

    return interlaced(x, (p.loc_h, p.loc_w), replay(global_relation, attention.long_range),
                      replay(local_relation, attention.short_range))[0]


# ---------------------------------------------------------------------------------------------- results

@dataclass(frozen=True)
class AttentionMap:
    """One pixel's attention over the map: ``feature`` (``h x w``), ``image`` (``H x W``), and the share of
    the weight that fell on padded positions and was cropped away (``feature.sum() == 1 - padding_mass``)."""

    feature: np.ndarray
    image: np.ndarray
    padding_mass: float


@dataclass(frozen=True)
class PixelAttention:
    """Everything a probe knows about one query pixel. ISA maps are ``None`` for a dense model; ``dense`` is
    ``None`` when no dense block was asked for."""

    pixel: tuple[int, int]
    image_pixel: tuple[float, float]
    feature_size: tuple[int, int]
    image_size: tuple[int, int]
    partition: Partition | None
    long_range: AttentionMap | None
    short_range: AttentionMap | None
    composed: AttentionMap | None
    dense: AttentionMap | None


@dataclass
class AttentionCapture:
    """One forward pass with its attention kept: ask :meth:`pixel` for any number of query pixels.

    ``logits`` are the model's (``1 x K x H x W``, resized like ``model(image)``); ``features`` is the map the
    attention ran on (the head's in_conv output); ``isa`` the captured ISA weights (``None`` for a dense head);
    ``dense_query``/``dense_key`` the ``hw x C`` tokens of the dense block, from which a row is one softmax.
    """

    image_size: tuple[int, int]
    feature_size: tuple[int, int]
    align_corners: bool
    logits: torch.Tensor
    features: torch.Tensor
    isa: ISAWeights | None
    dense_query: torch.Tensor | None
    dense_key: torch.Tensor | None

    def to_feature(self, row: float, col: float) -> tuple[int, int]:
        """Image -> feature coordinates (see :func:`image_to_feature`)."""
        return image_to_feature((row, col), self.image_size, self.feature_size, self.align_corners)

    def to_image(self, row: int, col: int) -> tuple[float, float]:
        """Feature -> image coordinates (see :func:`feature_to_image`)."""
        return feature_to_image((row, col), self.feature_size, self.image_size, self.align_corners)

    def dense_row(self, row: int, col: int) -> torch.Tensor:
        """``h x w`` dense attention weights of feature pixel ``(row, col)`` (one row of the affinity)."""
        if self.dense_query is None:
            raise ValueError("this capture has no dense block (capture(..., dense_block=None))")
        h, w = self.feature_size
        query = self.dense_query[row * w + col]
        scores = self.dense_key @ query * query.shape[-1] ** -0.5
        return torch.softmax(scores, dim=0).reshape(h, w)  # hw -> h x w

    def pixel(self, row: float, col: float, coords: Coords = "feature") -> PixelAttention:
        """The maps of one query pixel, given in feature or image coordinates."""
        if coords not in ("feature", "image"):
            raise ValueError(f"coords must be 'feature' or 'image', got {coords!r}")
        row, col = self.to_feature(row, col) if coords == "image" else (int(row), int(col))
        h, w = self.feature_size
        if not (0 <= row < h and 0 <= col < w):
            raise ValueError(f"pixel ({row}, {col}) is outside the {h}x{w} feature map")
        maps: dict[str, AttentionMap | None] = dict(long_range=None, short_range=None, composed=None)
        partition = None
        if self.isa is not None:
            partition = self.isa.partition
            for name, build in (("long_range", long_range_map), ("short_range", short_range_map),
                                ("composed", composed_map)):
                maps[name] = self._crop(build(self.isa, row, col), partition)
        dense = None
        if self.dense_query is not None:
            dense = self._crop(self.dense_row(row, col), Partition(h, w, 1, 1))
        return PixelAttention((row, col), self.to_image(row, col), self.feature_size, self.image_size,
                              partition, dense=dense, **maps)

    def _crop(self, padded: torch.Tensor, p: Partition) -> AttentionMap:
        padded = padded.detach().double().cpu()
        feature = padded[p.pad_top:p.pad_top + p.height, p.pad_left:p.pad_left + p.width]
        padding_mass = float(padded.sum() - feature.sum())
        feature = feature.float().numpy()
        return AttentionMap(feature, upsample_map(feature, self.image_size, self.align_corners),
                            max(padding_mass, 0.0))


# -------------------------------------------------------------------------------------------- capturing

DenseSource = Literal["auto"] | SelfAttentionBlock | DenseHead | None


def _dense_block(head: ContextHead, dense_block: DenseSource) -> SelfAttentionBlock | None:
    if isinstance(dense_block, DenseHead):
        return dense_block.relation
    if dense_block != "auto":
        return dense_block
    if isinstance(head, ISAHead):
        return head.global_relation
    return getattr(head, "relation", None)


def capture_head(head: ContextHead, features: list[torch.Tensor], image_size: tuple[int, int],
                 align_corners: bool = False, dense_block: DenseSource = "auto") -> AttentionCapture:
    """Run a decode head on backbone ``features`` with its attention kept (see :func:`capture`)."""
    kept: dict[str, torch.Tensor] = {}
    hook = head.in_conv.register_forward_hook(lambda module, args, out: kept.__setitem__("x", out))
    is_isa = isinstance(head, ISAHead)  # forward_with_attention always forms the weights (matmul kernel)
    try:
        with evaluating(head):
            # a dense head's weights are hw x hw (1 GiB at 128 x 128): its rows are rebuilt on demand instead
            logits, attention = head.forward_with_attention(features) if is_isa else (head(features), None)
            block = _dense_block(head, dense_block)
            x = kept["x"]
            query = key = None
            if block is not None:
                query, key = to_tokens(block.query_project(x))[0], to_tokens(block.key_project(x))[0]
    finally:
        hook.remove()
    logits = F.interpolate(logits, size=tuple(image_size), mode="bilinear", align_corners=align_corners)
    return AttentionCapture(tuple(image_size), tuple(x.shape[2:]), align_corners, logits, x, attention, query, key)


#: The compiled backbone made for each model's backbone by ``capture(..., optimize=True)``, with what it was
#: made for. Weakly keyed: it goes with the model.
_OPTIMIZED_BACKBONES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, nn.Module]] = weakref.WeakKeyDictionary()


def _weights_version(module: nn.Module) -> tuple[int, ...]:
    """Changes whenever a weight or buffer changes in place (an optimiser step, ``load_state_dict``, BatchNorm
    statistics in training mode): a compiled copy froze the values it saw, so it must then be made again."""
    return tuple(tensor._version for tensor in itertools.chain(module.parameters(), module.buffers()))


def optimized_backbone(backbone: nn.Module, precision: str, device: torch.device) -> nn.Module:
    """``backbone``'s compiled copy (:func:`isanet.models.optimize.optimize_for_inference`), made once and
    reused for every capture of the same model, precision and device while its weights stay as they were."""
    key = (precision, torch.device(device), _weights_version(backbone))
    made = _OPTIMIZED_BACKBONES.get(backbone)
    if made is None or made[0] != key:
        made = _OPTIMIZED_BACKBONES[backbone] = (key, optimize_for_inference(backbone, precision, device))
    return made[1]


def capture(model: nn.Module, image: torch.Tensor, dense_block: DenseSource = "auto",
            precision: str = "fp32", optimize: bool = False,
            memory_cap_bytes: int | None = footprint.DEFAULT_CAP_BYTES) -> AttentionCapture:
    """One forward pass of an ``ISANet`` on a normalised ``1 x 3 x H x W`` image, keeping the attention.

    The model runs in eval mode without gradients (its mode is restored). The logits are those of
    ``model(image)``: with the ``matmul`` kernel bit for bit; an ``sdpa`` model is run with ``matmul`` for the
    capture (the fused kernel never forms the weights), equal to rounding; a dense head keeps its kernel.
    ``dense_block``: ``"auto"`` (the
    model's ``global_relation`` over the whole map, or a dense head's own relation), another
    ``SelfAttentionBlock`` or ``DenseHead`` (its relation, applied to the same map), or ``None``.
    ``precision`` (:func:`isanet.runtime.resolve_precision`) is that of the backbone, nearly all the FLOPs; the
    head and its attention always run in fp32 on the backbone's features, so the weights shown are fp32.
    ``optimize`` runs the backbone through its compiled copy (:func:`optimized_backbone`: ``torch.compile``,
    weights frozen; made at the first capture and reused while the weights are unchanged), the same features
    within 1e-5 relative in fp32; the head stays eager, because the attention weights are what a capture keeps.
    It pays only over many pictures of one size: each new size compiles first (tens of seconds on a CPU).
    An ``ISANet`` whose capture would pass ``memory_cap_bytes`` (None: no cap; the estimate counts the attention
    it keeps, :func:`isanet.models.footprint.forward_bytes`) is refused before anything is allocated.
    """
    if image.dim() != 4 or image.shape[0] != 1 or image.shape[1] != 3:
        raise ValueError(f"expected one normalised 1 x 3 x H x W image, got shape {tuple(image.shape)}")
    config = getattr(model, "config", None)
    if isinstance(config, ISANetConfig):
        height, width = image.shape[2:]
        footprint.forward(config, height, width, keep_attention=isinstance(model.decode_head, ISAHead),
                          what=f"the attention capture of a {height}x{width} picture").check(memory_cap_bytes)
    precision = resolve_precision(precision, image.device)
    with evaluating(model):
        if optimize:  # the compiled copy applies the precision's autocast inside
            features = optimized_backbone(model.backbone, precision, image.device)(image)
        else:
            with autocast(precision, image.device):
                features = [stage.float() for stage in model.backbone(image)]
    return capture_head(model.decode_head, features, tuple(image.shape[2:]), model.align_corners, dense_block)


def probe(model: nn.Module, image: torch.Tensor, pixel: tuple[float, float], coords: Coords = "feature",
          dense_block: DenseSource = "auto") -> PixelAttention:
    """The attention maps of one pixel of ``image`` (see :class:`PixelAttention`); for several pixels,
    :func:`capture` once and call :meth:`AttentionCapture.pixel`."""
    return capture(model, image, dense_block).pixel(*pixel, coords=coords)
