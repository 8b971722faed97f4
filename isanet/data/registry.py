"""The data sets the kit knows, one registry: which reader reads a data set and which writer draws its sample.

:data:`DATASETS` holds one :class:`DatasetSpec` per data set: its reader (a
:class:`~isanet.data.datasets.SegDataset`), the writer of its synthetic sample (:mod:`isanet.data.synthetic`)
and a line on its on-disk layout. ``isanet train --dataset``, ``isanet sample-data`` and every reader look-up
read it, so a new data set is one entry here (its reader and writer beside the others) plus its tests.

Kept apart from the readers so that :mod:`isanet.data.datasets` (the published layouts) and
:mod:`isanet.data.folder` (your own) both build on the same base without importing each other.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from isanet.data.context import CONTEXT_DEFAULTS, CONTEXT_MIN_SIZE, CONTEXT_TASKS, beacon_pixels, write_context
from isanet.data.datasets import ADE20KDataset, CityscapesDataset, DatasetError, SegDataset, VOCDataset
from isanet.data.folder import FolderDataset
from isanet.data.synthetic import (
    FOLDER_CLASSES,
    write_ade20k,
    write_cityscapes,
    write_folder,
    write_voc,
)
from isanet.io.atomic import atomic_path
from isanet.io.outputs import check_output, check_replaceable
from isanet.limits import MAX_SAMPLE_IMAGES, check_side
from isanet.models.zoo import DATASET_SHORT_NAMES

#: The sample sizes of the published layouts and the folder sample: enough to run every code path.
SAMPLE_DEFAULTS = dict(num_train=8, num_val=4, size=128)
#: ``(top, num_train, num_val, size, rng, **options) -> top``: draws a sample into its own top folder.
Writer = Callable[..., Path]


@dataclass(frozen=True)
class DatasetSpec:
    """One data set: how to read it, how to draw a synthetic sample of it, and where its files lie."""

    reader: type[SegDataset]
    writer: Writer
    layout: str  # the on-disk layout, in a line
    top: Path | None  # the sample's own top folder under the output folder; None: the output folder itself
    max_object_classes: int | None = None  # how many object classes ``object_classes`` may ask for; None: no option
    defaults: dict = field(default_factory=lambda: dict(SAMPLE_DEFAULTS))  # num_train, num_val, size
    min_size: int = 16  # the smallest image width the writer can draw
    #: ``size -> line`` for SAMPLE_DATA.txt: what tells two samples of one layout apart (the context task's geometry)
    describe: Callable[[int], str] | None = None


def _describe_context(beacon_side: float, size: int) -> str:
    return f"Geometry: a beacon of {beacon_pixels(size, beacon_side)} px on {size}-px pictures.\n"


DATASETS: dict[str, DatasetSpec] = {
    "voc": DatasetSpec(VOCDataset, write_voc, "VOCdevkit/VOC2012: JPEGImages/, SegmentationClass(Aug)/, "
                       "ImageSets/Segmentation/*.txt", Path("VOCdevkit", "VOC2012"), len(VOCDataset.CLASSES) - 1),
    "cityscapes": DatasetSpec(CityscapesDataset, write_cityscapes, "cityscapes: leftImg8bit/SPLIT/CITY/, "
                              "gtFine/SPLIT/CITY/ (*_labelTrainIds.png or *_labelIds.png)", Path("cityscapes")),
    "ade20k": DatasetSpec(ADE20KDataset, write_ade20k, "ADEChallengeData2016: images/{training,validation}/, "
                          "annotations/{training,validation}/", Path("ADEChallengeData2016")),
    "folder": DatasetSpec(FolderDataset, write_folder, "your own: classes.txt (+ palette.txt), images/SPLIT/, "
                          "masks/SPLIT/", None, len(FOLDER_CLASSES) - 1),
    **{task.kind: DatasetSpec(FolderDataset, functools.partial(write_context, kind=task.kind),
                              f"{task.summary} (isanet.data.context), in the folder layout; read it with --dataset "
                              "folder", None, None, dict(CONTEXT_DEFAULTS), CONTEXT_MIN_SIZE,
                              functools.partial(_describe_context, task.beacon_side))
       for task in CONTEXT_TASKS.values()},
}

NOTICE = ("SYNTHETIC SAMPLE DATA written by isanet ({kind}, seed {seed}, {num_train} train / {num_val} val images).\n"
          "It only mimics the layout of the real data set; numbers measured on it say nothing about the published "
          "ISANet models.\n")


def dataset_class(dataset: str) -> type[SegDataset]:
    """The reader for a zoo data set string ("Cityscapes", "Pascal VOC 2012 + Aug", ...), a short name, or
    "folder" (your own data, :mod:`isanet.data.folder`)."""
    short = DATASET_SHORT_NAMES.get(dataset, dataset).lower()
    if short not in DATASETS:
        known = sorted(DATASETS) + sorted(DATASET_SHORT_NAMES)
        raise DatasetError(f"unknown data set {dataset!r}: expected one of {', '.join(map(repr, known))}")
    return DATASETS[short].reader


def build_dataset(dataset: str, root: str | os.PathLike, split: str = "val", **options) -> SegDataset:
    """The reader of ``dataset`` over the data under ``root`` (its own top folder or the folder above it);
    ``options`` go to the reader (the folder reader's ``skip_bad`` and ``progress``)."""
    return dataset_class(dataset)(root, split, **options)


def write_sample_dataset(kind: str, out_dir: str | os.PathLike, num_train: int | None = None,
                         num_val: int | None = None, size: int | None = None, seed: int = 0,
                         label_ids_only: bool = False, object_classes: int | None = None) -> Path:
    """Write a synthetic ``kind`` (a name in :data:`DATASETS`) data set under ``out_dir``.

    ``num_train``, ``num_val``, ``size`` (the image width in pixels) default to the kind's
    (:attr:`DatasetSpec.defaults`: 8 / 4 / 128, the context task 96 / 24 / 160). Returns the data set's own
    top folder (``VOCdevkit/VOC2012``, ``cityscapes``, ``ADEChallengeData2016``, or ``out_dir`` itself for
    "folder" and the context tasks), which also holds a
    ``SAMPLE_DATA.txt`` saying the data is synthetic. ``label_ids_only`` (Cityscapes) writes only the official
    ``*_gtFine_labelIds.png`` files. ``object_classes`` (VOC, folder) draws the objects from the first that many
    object classes only (default: all 20 for VOC, 4 of 7 for folder). "folder" writes into ``out_dir`` itself,
    so it refuses a folder that is not empty, and writes atomically (a staging folder renamed into place). The
    published layouts are written the same way; an earlier sample there is replaced whole while every file in it
    is the one isanet wrote (:func:`isanet.io.outputs.check_replaceable`: a file you added or edited there is
    named and kept, and nothing is written), and a top folder that is not a sample (no ``SAMPLE_DATA.txt``:
    perhaps the real data set) is refused. An empty ``out_dir`` is refused (it would mean the current folder).
    """
    if kind not in DATASETS:
        raise ValueError(f"unknown sample data set {kind!r}: choose one of {sorted(DATASETS)}")
    spec = DATASETS[kind]
    num_train = spec.defaults["num_train"] if num_train is None else num_train
    num_val = spec.defaults["num_val"] if num_val is None else num_val
    size = spec.defaults["size"] if size is None else size
    if min(num_train, num_val) < 1 or max(num_train, num_val) > MAX_SAMPLE_IMAGES:
        raise ValueError(f"need at least one train and one val image, at most {MAX_SAMPLE_IMAGES} of each, got "
                         f"{num_train}/{num_val}")
    check_side(size, "size", low=spec.min_size)
    if label_ids_only and kind != "cityscapes":
        raise ValueError("label_ids_only applies to Cityscapes only (the other data sets have one label format)")
    if object_classes is not None and not 1 <= object_classes <= (spec.max_object_classes or 0):
        limits = " and ".join(f"{name} (1 to {other.max_object_classes})" for name, other in DATASETS.items()
                              if other.max_object_classes)
        raise ValueError(f"object_classes applies to {limits} samples only, got {object_classes} for {kind}")
    check_output(out_dir, "out_dir", kind="dir")
    options = {"label_ids_only": True} if label_ids_only else {}
    if object_classes is not None:
        options["object_classes"] = object_classes
    rng, notice = np.random.default_rng(seed), NOTICE.format(kind=kind, seed=seed, num_train=num_train,
                                                            num_val=num_val)
    if spec.describe is not None:
        notice += spec.describe(size)
    if spec.top is None:
        out = Path(out_dir)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ValueError(f"{out} exists and is not an empty folder: the {kind} sample is written as that "
                             "folder and never over existing files; choose a new or empty folder")
        with atomic_path(out) as staging:
            (spec.writer(staging, num_train, num_val, size, rng, **options) / "SAMPLE_DATA.txt").write_text(notice)
        return out
    top = Path(out_dir) / spec.top
    _check_sample(top)
    check_replaceable(top, "the earlier sample")
    # written whole into a temporary folder and renamed into place: an interrupt leaves nothing half-written,
    # and a previous sample is replaced, never mixed with the new one
    with atomic_path(top) as staging:
        (spec.writer(staging, num_train, num_val, size, rng, **options) / "SAMPLE_DATA.txt").write_text(notice)
    return top


def _check_sample(top: Path) -> None:
    """Only an earlier *sample* may be replaced: a folder without ``SAMPLE_DATA.txt`` may be the real data set
    (or anything else), and is never written into."""
    if top.is_symlink() or (top.exists() and not top.is_dir()):
        raise ValueError(f"{top} exists and is not a folder; choose another output folder")
    if top.is_dir() and any(top.iterdir()) and not (top / "SAMPLE_DATA.txt").is_file():
        raise ValueError(f"{top} already exists and is not isanet sample data (no SAMPLE_DATA.txt): refusing to "
                         "write over it, it may be the real data set; choose another output folder")
