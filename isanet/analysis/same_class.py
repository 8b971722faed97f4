"""Does a pixel attend to its own class? The attention mass each map puts on the query's class, measured.

Interlaced Sparse Self-Attention for Semantic Segmentation (Huang et al., https://arxiv.org/abs/1907.12273).

Attention pictures of trained models often *look* as if a pixel reads the pixels of its own class. This module
turns the impression into a number. For a query pixel ``p`` of class ``c`` and one of its attention maps ``m``
(long range, short range, composed two-hop, dense; see :mod:`isanet.analysis.probe`):

* ``mass``    = :math:`\\sum_{r:\\,y_r = c} m[r] \\,/\\, \\sum_{r:\\,y_r \\ne \\text{ignore}} m[r]`, the share of the
  map's weight (on labelled, unpadded pixels) that falls on class ``c``;
* ``uniform`` = the same share for a map that spreads its weight evenly over the keys it *can* read (its
  support: one pixel per block for the long-range map, the block for the short-range map, the whole map for
  the composed and the dense map). This is the baseline: a short-range map puts much weight on the query's
  class just because neighbours tend to share a class, whatever it learnt;
* ``share``   = class ``c``'s share of the labelled map (the uniform baseline of a map over the whole map).

Each is averaged over query pixels (every labelled pixel, or a seeded random subset), and also per query class
(:meth:`SameClassAttention.balanced`: every class counts once, so a large background does not decide alone).
``mass > uniform`` means the *weights* prefer the query's class beyond where the map can look; ``mass ==
uniform`` means they do not. The query itself is one of the keys (as in the model). Labels are read at each
feature pixel's centre, with the resize the model uses (:func:`isanet.analysis.probe.feature_to_image`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from isanet.analysis.probe import (
    AttentionCapture,
    DenseSource,
    capture,
    composed_map,
    feature_to_image,
    long_range_map,
    short_range_map,
)
from isanet.data.datasets import IGNORE_INDEX
from isanet.models.isa import long_range_group_ids, short_range_group_ids

MAPS = ("long_range", "short_range", "composed", "dense")


@dataclass(frozen=True)
class ClassMass:
    """One map's averages over the query pixels (fractions in [0, 1])."""

    mass: float  # weight on the query's class
    uniform: float  # the same for uniform weights over the map's keys
    share: float  # the class's share of the labelled map

    @property
    def lift(self) -> float:
        """``mass / uniform``: 1 means the weights add no preference for the query's class."""
        return self.mass / self.uniform if self.uniform > 0 else float("nan")

    @property
    def ceiling(self) -> float:
        """The largest lift possible, ``1 / uniform`` (all weight on the deciding keys): a map whose keys are
        mostly deciding already (a short-range block inside an object) cannot lift much, whatever it learnt."""
        return 1 / self.uniform if self.uniform > 0 else float("nan")


@dataclass(frozen=True)
class SameClassAttention:
    """The same-class measurement: per query class, the sums of (mass, uniform, share) over its query pixels
    for each map (``sums[class][map]``) and the number of those pixels (``counts[class]``).

    :attr:`maps` averages over all query pixels (a frequent class, such as background, weighs most);
    :meth:`balanced` averages each class first and then the classes, so every class counts once.
    """

    sums: dict[int, dict[str, tuple[float, float, float]]]
    counts: dict[int, int]
    feature_size: tuple[int, int]

    @property
    def num_queries(self) -> int:
        return sum(self.counts.values())

    @property
    def maps(self) -> dict[str, ClassMass]:
        """Each map's averages over all query pixels."""
        names = [name for name in MAPS if any(name in by_map for by_map in self.sums.values())]
        return {name: ClassMass(*(sum(self.sums[c][name][i] for c in self.sums) / self.num_queries
                                  for i in range(3))) for name in names}

    def by_class(self) -> dict[int, dict[str, ClassMass]]:
        """Each query class's own averages."""
        return {c: {name: ClassMass(*(v / self.counts[c] for v in triple)) for name, triple in by_map.items()}
                for c, by_map in sorted(self.sums.items())}

    def balanced(self) -> dict[str, ClassMass]:
        """Each map's averages over the query classes, each class's average counting once."""
        per_class = list(self.by_class().values())
        return {name: ClassMass(*(sum(getattr(c[name], field) for c in per_class) / len(per_class)
                                  for field in ("mass", "uniform", "share"))) for name in self.maps}

    def table(self, balanced: bool = False) -> str:
        """The numbers as a small fixed-width table, one row per map (``balanced``: class-balanced)."""
        lines = [f"{'map':>12}  {'on own class':>12}  {'uniform over keys':>17}  {'lift':>5}  {'class share':>11}"]
        for name, value in (self.balanced() if balanced else self.maps).items():
            lines.append(f"{name:>12}  {value.mass:12.3f}  {value.uniform:17.3f}  {value.lift:5.2f}  "
                         f"{value.share:11.3f}")
        return "\n".join(lines)


def labels_at_features(label: np.ndarray, feature_size: tuple[int, int], align_corners: bool = False) -> np.ndarray:
    """The ``h x w`` labels of an ``H x W`` label map, read at each feature pixel's centre (nearest pixel)."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be an H x W class map, got shape {label.shape}")
    size = label.shape

    def nearest(axis: int, index: int) -> int:
        point = [0, 0]
        point[axis] = index
        position = feature_to_image(tuple(point), feature_size, size, align_corners)[axis]
        return int(min(max(np.floor(position + 0.5), 0), size[axis] - 1))  # rounded half up, as probe rounds

    rows = [nearest(0, i) for i in range(feature_size[0])]
    cols = [nearest(1, j) for j in range(feature_size[1])]
    return label[np.ix_(rows, cols)]  # h x w


def _maps_of(capture: AttentionCapture, row: int, col: int) -> dict[str, np.ndarray]:
    """The query's ``h x w`` maps (padding cropped away), without the image-size upsampling of ``pixel()``."""
    maps = {}
    if capture.isa is not None:
        p = capture.isa.partition
        for name, build in (("long_range", long_range_map), ("short_range", short_range_map),
                            ("composed", composed_map)):
            padded = build(capture.isa, row, col).detach().double().cpu()
            maps[name] = padded[p.pad_top:p.pad_top + p.height, p.pad_left:p.pad_left + p.width].numpy()
    if capture.dense_query is not None:
        maps["dense"] = capture.dense_row(row, col).detach().double().cpu().numpy()
    return maps


def _support(name: str, capture: AttentionCapture, row: int, col: int, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``h x w`` mask of the keys the map can read (its weights are softmax outputs, so never exactly 0
    there; the mask is built from the geometry, not from the values, so an underflowed weight still counts)."""
    if name in ("composed", "dense") or capture.isa is None:
        return np.ones(shape, dtype=bool)
    p = capture.isa.partition
    long_group, block = p.groups_of(row, col)
    same = (long_range_group_ids(p) == long_group) if name == "long_range" else (short_range_group_ids(p) == block)
    return same[p.pad_top:p.pad_top + shape[0], p.pad_left:p.pad_left + shape[1]].numpy()  # Hp x Wp -> h x w


def same_class_attention(capture: AttentionCapture, label: np.ndarray, queries: int | None = 256, seed: int = 0,
                         ignore_index: int = IGNORE_INDEX, query_classes: Iterable[int] | None = None,
                         cue_classes: Iterable[int] = ()) -> SameClassAttention:
    """Average same-class attention mass of ``capture``'s maps over query pixels (see the module doc).

    ``label``: the class map of the captured image, at the image size (``capture.image_size``) or already at
    the feature size. ``queries``: how many labelled feature pixels to average over (a seeded random subset),
    ``None`` for all of them. ``query_classes``: measure queries of these classes only (default: all).
    ``cue_classes``: pixels of these classes count as deciding for *every* query, beside its own class (the
    beacon of the context task, :func:`cue_attention`); the mass, the uniform baseline and the share are then
    those of the query's class and the cue together.
    """
    label = np.asarray(label)
    if label.shape == tuple(capture.feature_size):
        feature_label = label
    elif label.shape == tuple(capture.image_size):
        feature_label = labels_at_features(label, capture.feature_size, capture.align_corners)
    else:
        raise ValueError(f"label has shape {label.shape}; expected the image size {capture.image_size} or the "
                         f"feature size {capture.feature_size} of the capture")
    labelled = feature_label != ignore_index
    cue = np.isin(feature_label, list(cue_classes))
    measured = labelled if query_classes is None else labelled & np.isin(feature_label, list(query_classes))
    candidates = np.argwhere(measured)
    if len(candidates) == 0:
        raise ValueError(f"label has no labelled pixel {'' if query_classes is None else 'of the query classes '}"
                         f"at the feature size {capture.feature_size}")
    if queries is not None and queries < len(candidates):
        chosen = np.random.default_rng(seed).choice(len(candidates), size=queries, replace=False)
        candidates = candidates[np.sort(chosen)]
    sums: dict[int, dict[str, np.ndarray]] = {}
    counts: dict[int, int] = {}
    for row, col in candidates:
        query_class = int(feature_label[row, col])
        own = ((feature_label == query_class) | cue) & labelled
        counts[query_class] = counts.get(query_class, 0) + 1
        by_map = sums.setdefault(query_class, {})
        for name, values in _maps_of(capture, int(row), int(col)).items():
            support = _support(name, capture, int(row), int(col), values.shape) & labelled
            total = values[labelled].sum()
            triple = np.array([values[own].sum() / total if total > 0 else 0.0,
                               (support & own).sum() / support.sum(),
                               own.sum() / labelled.sum()])
            by_map[name] = by_map.get(name, 0.0) + triple
    return SameClassAttention({c: {name: tuple(float(v) for v in triple) for name, triple in by_map.items()}
                               for c, by_map in sums.items()}, counts, tuple(capture.feature_size))


def combine(results: Iterable[SameClassAttention]) -> SameClassAttention:
    """Several measurements (e.g. one per image) as one, as if their query pixels had been measured together."""
    results = list(results)
    if not results:
        raise ValueError("combine() needs at least one SameClassAttention")
    sums: dict[int, dict[str, tuple[float, float, float]]] = {}
    counts: dict[int, int] = {}
    for result in results:
        for c, by_map in result.sums.items():
            counts[c] = counts.get(c, 0) + result.counts[c]
            into = sums.setdefault(c, {})
            for name, triple in by_map.items():
                into[name] = tuple(a + b for a, b in zip(into.get(name, (0.0, 0.0, 0.0)), triple))
    sizes = {result.feature_size for result in results}
    return SameClassAttention(sums, counts, results[0].feature_size if len(sizes) == 1 else (0, 0))


def same_class_over_images(model: torch.nn.Module, samples: Iterable[dict],
                           transform: Callable[[np.ndarray], torch.Tensor], queries: int | None = 256,
                           seed: int = 0, dense_block: DenseSource = "auto", **which) -> SameClassAttention:
    """:func:`same_class_attention` of ``model`` over labelled ``samples`` (``{"image", "label"}`` dicts, as
    the data set readers give them), combined over all their query pixels. ``transform`` turns an ``H x W x 3``
    uint8 image into the normalised ``3 x h x w`` tensor the model sees (e.g.
    :class:`isanet.data.transforms.TestTransform`); the labels are read at the feature pixels' centres of the
    original label map, so a resize by the transform does not matter. ``dense_block`` picks the dense map as
    :func:`isanet.analysis.probe.capture` does. ``feature_size`` is ``(0, 0)`` when the images gave different
    map sizes. ``which``: ``query_classes`` / ``cue_classes`` of :func:`same_class_attention`; images with no
    query pixel of those classes are passed over."""
    device = next(model.parameters()).device
    results = []
    for index, sample in enumerate(samples):
        captured = capture(model, transform(sample["image"])[None].to(device), dense_block)
        label = labels_at_features(sample["label"], captured.feature_size, captured.align_corners)
        if "query_classes" in which and not np.isin(label, list(which["query_classes"])).any():
            continue
        results.append(same_class_attention(captured, label, queries=queries, seed=seed + index, **which))
    return combine(results)


def cue_attention(model: torch.nn.Module, samples: Iterable[dict], transform: Callable[[np.ndarray], torch.Tensor],
                  queries: int | None = 256, seed: int = 0) -> SameClassAttention:
    """The context task's measurement (:mod:`isanet.data.context`): for object pixels (whose class the beacon
    decides), the attention mass each map puts on the pixels that decide the answer — the beacon and the
    query's own team — against the uniform share of those pixels among the keys the map can read.

    A lift of 1 is what random projections give; a model that learnt to read the cue lifts it well above.
    """
    from isanet.data.context import BEACON, TEAM_CLASSES

    return same_class_over_images(model, samples, transform, queries, seed, query_classes=TEAM_CLASSES,
                                  cue_classes=(BEACON,))
