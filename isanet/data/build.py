"""Which reader reads a data set: by the zoo's data set string, a short name, or "folder" (your own data).

Kept apart from the readers so that :mod:`isanet.data.datasets` (the published layouts) and
:mod:`isanet.data.folder` (your own) both build on the same base without importing each other.
"""

from __future__ import annotations

import os

from isanet.data.datasets import ADE20KDataset, CityscapesDataset, DatasetError, SegDataset, VOCDataset
from isanet.data.folder import FolderDataset
from isanet.models.zoo import DATASET_SHORT_NAMES

READERS: dict[str, type[SegDataset]] = {"voc": VOCDataset, "cityscapes": CityscapesDataset,
                                        "ade20k": ADE20KDataset, "folder": FolderDataset}


def dataset_class(dataset: str) -> type[SegDataset]:
    """The reader for a zoo data set string ("Cityscapes", "Pascal VOC 2012 + Aug", ...), a short name, or
    "folder" (your own data, :mod:`isanet.data.folder`)."""
    short = DATASET_SHORT_NAMES.get(dataset, dataset).lower()
    if short not in READERS:
        known = sorted(READERS) + sorted(DATASET_SHORT_NAMES)
        raise DatasetError(f"unknown data set {dataset!r}: expected one of {', '.join(map(repr, known))}")
    return READERS[short]


def build_dataset(dataset: str, root: str | os.PathLike, split: str = "val", **options) -> SegDataset:
    """The reader of ``dataset`` over the data under ``root`` (its own top folder or the folder above it);
    ``options`` go to the reader (the folder reader's ``skip_bad`` and ``progress``)."""
    return dataset_class(dataset)(root, split, **options)
