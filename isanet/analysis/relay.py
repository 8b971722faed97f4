"""The relay, measured: does a pixel that cannot read the cue in ISA's first step fetch it from its block in the
second?

*Interlaced Sparse Self-Attention for Semantic Segmentation*, Huang et al., arXiv:1907.12273,
https://arxiv.org/abs/1907.12273. In two hops, information reaches pixel ``p`` from the cue (the context task's
beacon, :mod:`isanet.data.context`) only through the members ``q`` of ``p``'s block whose long-range group holds
a cue pixel: ``q`` reads the cue in step 1 (long range), ``p`` reads ``q`` in step 2 (short range). Those members
are the block's *relay* pixels. For every object pixel whose own long-range group holds no cue pixel (it cannot
read the cue in step 1), this module takes the short-range map's weight on the relay pixels and compares it
with their uniform share of the block: a ratio (lift) of 1 is what random weights give; a model that learnt to
relay puts its second step's weight on them. Cue and object pixels are read from the labels at the feature
pixels' centres, so "holds a cue pixel" is the geometry of the labels, not of the features.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from isanet.analysis.probe import capture
from isanet.analysis.same_class import labels_at_features
from isanet.models.isa import ISAWeights, Partition, long_range_group_ids, member_positions


@dataclass(frozen=True)
class RelayAttention:
    """Sums over the measured query pixels (object pixels whose long-range group holds no cue pixel)."""

    queries: int  # how many such pixels were measured
    weight: float  # sum of their short-range weight on their block's relay pixels
    uniform: float  # sum of the relay pixels' share of each block (the weight uniform attention would give)

    @property
    def lift(self) -> float:
        """Mean weight on the relay pixels over their mean uniform share (NaN when nothing was measured)."""
        return self.weight / self.uniform if self.uniform > 0 else float("nan")

    def __add__(self, other: RelayAttention) -> RelayAttention:
        return RelayAttention(self.queries + other.queries, self.weight + other.weight, self.uniform + other.uniform)


def _unpadded(partition: Partition, padded: np.ndarray) -> np.ndarray:
    """The ``h x w`` real map of a ``padded_h x padded_w`` one."""
    p = partition
    return padded[p.pad_top:p.pad_top + p.height, p.pad_left:p.pad_left + p.width]


def _own_groups(partition: Partition) -> np.ndarray:
    """``h x w``: each real pixel's long-range group (its in-block offset)."""
    return _unpadded(partition, long_range_group_ids(partition).numpy())


def relay_offsets(partition: Partition, feature_label: np.ndarray, cue_classes: Iterable[int]) -> np.ndarray:
    """Which in-block offsets (long-range groups) hold a cue pixel: a boolean vector over the groups. The block
    members at those offsets are each block's relay pixels."""
    cue_groups = np.unique(_own_groups(partition)[np.isin(feature_label, list(cue_classes))])
    return np.isin(np.arange(partition.num_long_range_groups), cue_groups)


def needs_relay(partition: Partition, feature_label: np.ndarray, cue_classes: Iterable[int],
                query_classes: Iterable[int]) -> np.ndarray:
    """``h x w``: the query pixels (``query_classes``) whose long-range group holds no cue pixel, which can get the
    cue only in two hops. The pixels the relay is measured on, and the ones worth clicking in the explorer."""
    relay = relay_offsets(partition, feature_label, cue_classes)
    return np.isin(feature_label, list(query_classes)) & ~relay[_own_groups(partition)]


def relay_weight_map(attention: ISAWeights, feature_label: np.ndarray, cue_classes: Iterable[int],
                     query_classes: Iterable[int], image_index: int = 0) -> np.ndarray:
    """``h x w``: each pixel's short-range weight on its block's relay pixels, for the pixels that need the relay
    (:func:`needs_relay`); NaN elsewhere. The per-pixel form of :func:`relay_attention` (the explorer opens on the
    pixel where it is largest)."""
    p = attention.partition
    relay = relay_offsets(p, feature_label, cue_classes)  # B: which offsets of a block relay
    short = attention.short_range[image_index].detach().double().cpu().numpy()  # blocks x B x B
    on_relays = short[:, :, relay].sum(-1)  # blocks x B: each member's weight on its block's relay pixels
    positions = member_positions(p).numpy()  # offset x block: the padded position of each member
    weights = np.empty(p.padded_h * p.padded_w)
    weights[positions.ravel()] = on_relays.T.ravel()  # padded map, row-major
    weights = _unpadded(p, weights.reshape(p.padded_h, p.padded_w))
    return np.where(needs_relay(p, feature_label, cue_classes, query_classes), weights, np.nan)


def strongest_relay_pixel(weights: np.ndarray) -> tuple[int, int] | None:
    """The feature pixel ``(row, col)`` that needs the relay and puts the most short-range weight on its block's
    relay pixels, from the ``h x w`` map of :func:`relay_weight_map`; None when no pixel needs the relay (all NaN).
    Where an explorer opens."""
    if np.isnan(weights).all():
        return None
    row, col = np.unravel_index(np.nanargmax(weights), weights.shape)
    return int(row), int(col)


def relay_attention(attention: ISAWeights, feature_label: np.ndarray, cue_classes: Iterable[int],
                    query_classes: Iterable[int], image_index: int = 0) -> RelayAttention:
    """The relay measurement of one captured image: ``attention`` its ISA weights, ``feature_label`` its
    ``h x w`` labels at the feature size (the unpadded map)."""
    weights = relay_weight_map(attention, feature_label, cue_classes, query_classes, image_index)
    measured = ~np.isnan(weights)
    queries = int(measured.sum())
    share = relay_offsets(attention.partition, feature_label, cue_classes).mean()
    return RelayAttention(queries, float(weights[measured].sum()), queries * share)


def relay_over_images(model: torch.nn.Module, samples: Iterable[dict],
                      transform: Callable[[np.ndarray], torch.Tensor], cue_classes: Iterable[int],
                      query_classes: Iterable[int]) -> RelayAttention:
    """:func:`relay_attention` of an ISA ``model`` over labelled ``samples`` (``{"image", "label"}``), summed."""
    device = next(model.parameters()).device
    total = RelayAttention(0, 0.0, 0.0)
    for sample in samples:
        captured = capture(model, transform(sample["image"])[None].to(device))
        if captured.isa is None:
            raise ValueError("the relay is measured on ISA models only: this model's head has no ISA weights")
        label = labels_at_features(sample["label"], captured.feature_size, captured.align_corners)
        total = total + relay_attention(captured.isa, label, cue_classes, query_classes)
    return total
