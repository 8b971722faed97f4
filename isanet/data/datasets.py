"""Readers for the three data sets of the ISANet zoo, in their real on-disk layouts.

Each reader lists its samples the way mmsegmentation 1.2.2 does (split files for Pascal VOC, sorted recursive
scans for Cityscapes and ADE20K) and decodes them the way mmseg's pipeline does: images with OpenCV in colour
mode (so grayscale and RGBA files become 3-channel, as ``LoadImageFromFile`` makes them) turned into RGB, labels
with Pillow unchanged (palette indices for VOC), then mapped to train ids (Cityscapes ``labelIds``) or reduced
(ADE20K's ``reduce_zero_label``). ``ds[i]`` is a plain dict, so the readers stay framework-free; every problem
with the files is one :class:`DatasetError` that names the file or folder and says what was expected.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from isanet.io.image import ImageError, read_image

__all__ = ["IGNORE_INDEX", "DatasetError", "SegDataset", "as_rgb_uint8", "read_image", "read_label"]

IGNORE_INDEX = 255


class DatasetError(ValueError):
    """A data folder or file that cannot be read as the data set it should be, with what was expected."""


def as_rgb_uint8(image, what: str = "image") -> np.ndarray:
    """A picture as ``H x W x 3`` uint8 RGB: an image file's path, or an array in uint8 [0, 255], or float in
    [0, 1] (matplotlib's and torchvision's convention, scaled by 255) or [0, 255]. Anything else is refused:
    casting a float [0, 1] picture to uint8 would silently turn it black."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(Path(image))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise ValueError(f"{what} must be H x W x 3 RGB, got shape {array.shape}")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{what} must hold numbers, got dtype {array.dtype}")
    low, high = float(array.min()), float(array.max())
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 255:
        raise ValueError(f"{what} values must be in [0, 1] (float) or [0, 255], got {low:g} to {high:g}")
    if np.issubdtype(array.dtype, np.floating) and high <= 1.0:
        array = array * 255.0
    return np.ascontiguousarray(np.rint(array).astype(np.uint8))


def read_label(path: Path) -> np.ndarray:
    """The raw ``H x W`` label values, read like mmseg's ``LoadAnnotations`` (Pillow, 'unchanged')."""
    try:
        with Image.open(path) as handle:
            label = np.array(handle)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot read label {path}: {error}") from None
    if label.ndim == 3 and label.shape[2] == 1:
        label = label[..., 0]
    if label.ndim != 2:
        raise DatasetError(f"label {path} has shape {label.shape}: expected a single-channel (palette or "
                           "grayscale) image of class indices, not a colour rendering")
    if label.max(initial=0) > 255 or label.min(initial=0) < 0:
        raise DatasetError(f"label {path} has values outside 0..255 (dtype {label.dtype}): expected 8-bit indices")
    return label.astype(np.uint8)


class SegDataset:
    """Shared machinery: a list of ``(image, label)`` paths, loading, mapping and checks.

    Subclasses set ``NAME``, ``CLASSES``, ``PALETTE``, ``TOPS`` (where the data set's own top folder may sit
    below the folder a user names, first its usual name), ``MARKERS`` (sub-folders that identify that top
    folder) and implement :meth:`list_samples`.
    """

    NAME: str = ""
    CLASSES: tuple[str, ...] = ()
    PALETTE: tuple[tuple[int, int, int], ...] = ()
    TOPS: tuple[str, ...] = ()
    VALUE_HINT: str = ""
    MARKERS: tuple[str, ...] = ()
    SPLITS: dict[str, str] = {}

    def __init__(self, root: str | os.PathLike, split: str = "val"):
        if split not in self.SPLITS:
            raise DatasetError(f"{type(self).__name__} has no split {split!r}: use one of {sorted(self.SPLITS)}")
        self.split = split
        self.root = self.find_root(Path(root))
        self.samples: list[tuple[Path, Path]] = self.list_samples(split)
        if not self.samples:
            raise DatasetError(f"no {self.SPLITS[split]} images found under {self.root}: the split is empty")

    @classmethod
    def find_root(cls, root: Path) -> Path:
        """The first of ``root`` and ``root/TOPS...`` that holds every marker folder (users point at either)."""
        for candidate in (root, *(root / top for top in cls.TOPS)):
            if all((candidate / marker).is_dir() for marker in cls.MARKERS):
                return candidate
        state = ("does not exist" if not root.exists() else "is not a folder" if not root.is_dir() else
                 "is empty" if not any(root.iterdir()) else f"has no {'/'.join(cls.MARKERS)} folder")
        raise DatasetError(f"{root} is not a {cls.NAME} data root: it {state}. Expected the folder that holds "
                           f"{' and '.join(cls.MARKERS)} (e.g. .../{cls.TOPS[-1]}) or a folder above it")

    def list_samples(self, split: str) -> list[tuple[Path, Path]]:
        """``(image, label)`` paths of ``split`` in mmseg's order; every image must have its label."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return len(self.CLASSES)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        image_path, label_path = self.samples[index]
        try:
            image = read_image(image_path)
        except ImageError as error:  # the reader's one line, as this module's one error type
            raise DatasetError(str(error)) from None
        raw = read_label(label_path)
        if image.shape[:2] != raw.shape:
            raise DatasetError(f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its label "
                               f"{label_path} is {raw.shape[1]}x{raw.shape[0]}: they must match")
        label = self.map_label(raw, label_path)
        self.check_values(raw, label, label_path)
        return {"image": image, "label": label, "path": str(image_path), "label_path": str(label_path)}

    def map_label(self, label: np.ndarray, path: Path) -> np.ndarray:
        """Raw file values to train ids (identity here; Cityscapes ``labelIds`` and ADE20K override)."""
        return label

    def check_values(self, raw: np.ndarray, label: np.ndarray, path: Path) -> None:
        """Every mapped value must be a class or ignore; the error quotes the offending values as in the file."""
        outside = (label >= self.num_classes) & (label != IGNORE_INDEX)
        if outside.any():
            bad = np.unique(raw[outside]).tolist()
            raise DatasetError(f"label {path} has values {bad} that are not among the {self.num_classes} "
                               f"{self.NAME} classes{self.VALUE_HINT} (or {IGNORE_INDEX} = ignore)")

    def scan(self, image_dir: Path, image_suffix: str) -> list[Path]:
        """Every ``*image_suffix`` file under ``image_dir``, sorted as mmseg sorts them (by path string)."""
        if not image_dir.is_dir():
            raise DatasetError(f"missing folder {image_dir}: expected the {self.split} images there")
        return sorted(image_dir.rglob(f"*{image_suffix}"), key=str)

    @staticmethod
    def label_for(image: Path, label: Path) -> Path:
        """``label`` if it exists; listing fails early, naming the image, rather than mid-evaluation."""
        if not label.is_file():
            raise DatasetError(f"image {image} has no label: expected {label}")
        return label


class VOCDataset(SegDataset):
    """Pascal VOC 2012 with the SBD augmentation, as mmseg's ``pascal_voc12_aug`` config reads it.

    ``split="train"`` is mmseg's training set: the ``ConcatDataset`` of ``train.txt`` (labels in
    ``SegmentationClass``) followed by ``aug.txt`` (labels in ``SegmentationClassAug``). When only a full
    ``train_aug.txt``/``trainaug.txt`` list exists (10,582 names, other converters), the aug part is that list
    minus the train and val names, which is how mmseg's converter makes ``aug.txt``. ``"train_voc"`` is
    ``train.txt`` alone, ``"val"`` is ``val.txt``.
    """

    NAME = "Pascal VOC"
    VALUE_HINT = " (0..20)"
    CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")
    PALETTE = ((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128),
               (128, 128, 128), (64, 0, 0), (192, 0, 0), (64, 128, 0), (192, 128, 0), (64, 0, 128),
               (192, 0, 128), (64, 128, 128), (192, 128, 128), (0, 64, 0), (128, 64, 0), (0, 192, 0),
               (128, 192, 0), (0, 64, 128))
    TOPS = ("VOC2012", "VOCdevkit/VOC2012")
    MARKERS = ("JPEGImages",)
    SPLITS = {"train": "train+aug", "train_voc": "train", "val": "val"}
    FULL_AUG_LISTS = ("train_aug.txt", "trainaug.txt")

    def list_samples(self, split: str) -> list[tuple[Path, Path]]:
        if split == "train":
            return self.samples_from(self.train_names(), "SegmentationClass") + \
                self.samples_from(self.aug_names(), "SegmentationClassAug")
        return self.samples_from(self.read_split("train.txt" if split == "train_voc" else "val.txt"),
                                 "SegmentationClass")

    @property
    def split_dir(self) -> Path:
        return self.root / "ImageSets" / "Segmentation"

    def read_split(self, name: str) -> list[str]:
        path = self.split_dir / name
        if not path.is_file():
            raise DatasetError(f"missing split file {path}: expected one image name per line")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]

    def train_names(self) -> list[str]:
        return self.read_split("train.txt")

    def aug_names(self) -> list[str]:
        if (self.split_dir / "aug.txt").is_file():
            return self.read_split("aug.txt")
        for name in self.FULL_AUG_LISTS:
            if (self.split_dir / name).is_file():
                known = set(self.read_split("train.txt")) | set(self.read_split("val.txt"))
                return [item for item in self.read_split(name) if item not in known]
        raise DatasetError(f"missing split file {self.split_dir / 'aug.txt'} (or train_aug.txt): the 'train' "
                           "split is VOC train + SBD aug as mmseg trains it; use split='train_voc' for VOC alone")

    def samples_from(self, names: list[str], label_folder: str) -> list[tuple[Path, Path]]:
        samples = []
        for name in names:
            image = self.root / "JPEGImages" / f"{name}.jpg"
            if not image.is_file():
                raise DatasetError(f"missing image {image} (listed in the {self.split} split files)")
            samples.append((image, self.label_for(image, self.root / label_folder / f"{name}.png")))
        return samples


# Cityscapes label id -> train id (cityscapesscripts' labels.py, which mmseg's converter uses); others -> 255.
CITYSCAPES_ID_TO_TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                             25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
CITYSCAPES_NUM_IDS = 34  # ids 0..33 are defined; a labelIds file with anything else is not Cityscapes


def _cityscapes_id_table() -> np.ndarray:
    """``train_id = table[label_id]``: 255 for defined ids without a train id, -1 for undefined ids."""
    table = np.full(256, -1, dtype=np.int16)
    table[:CITYSCAPES_NUM_IDS] = IGNORE_INDEX
    table[list(CITYSCAPES_ID_TO_TRAIN_ID)] = list(CITYSCAPES_ID_TO_TRAIN_ID.values())
    return table


class CityscapesDataset(SegDataset):
    """Cityscapes fine annotations: ``leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with
    ``gtFine/{split}/{city}/*_gtFine_labelTrainIds.png`` (mmseg's converter output). When a sample only has
    the official ``*_gtFine_labelIds.png``, its ids are mapped to train ids on the fly with the same table.
    """

    NAME = "Cityscapes"
    VALUE_HINT = " (train ids 0..18)"
    CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
               "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
               "bicycle")
    PALETTE = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
               (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
               (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32))
    TOPS = ("cityscapes",)
    MARKERS = ("leftImg8bit", "gtFine")
    SPLITS = {"train": "train", "val": "val", "test": "test"}
    IMAGE_SUFFIX = "_leftImg8bit.png"
    TRAIN_ID_SUFFIX = "_gtFine_labelTrainIds.png"
    ID_SUFFIX = "_gtFine_labelIds.png"
    ID_TABLE = _cityscapes_id_table()

    def list_samples(self, split: str) -> list[tuple[Path, Path]]:
        image_dir = self.root / "leftImg8bit" / split
        return [(image, self.label_of(image, self.root / "gtFine" / split / image.relative_to(image_dir)))
                for image in self.scan(image_dir, self.IMAGE_SUFFIX)]

    def label_of(self, image: Path, mirrored: Path) -> Path:
        """The train-id label of ``image`` (``mirrored`` is its path under gtFine), else its label-id file."""
        stem = str(mirrored)[:-len(self.IMAGE_SUFFIX)]
        train_ids, ids = Path(f"{stem}{self.TRAIN_ID_SUFFIX}"), Path(f"{stem}{self.ID_SUFFIX}")
        if not train_ids.is_file() and ids.is_file():
            return ids
        if not train_ids.is_file():
            raise DatasetError(f"image {image} has no label: expected {train_ids} (or {ids.name})")
        return train_ids

    def map_label(self, label: np.ndarray, path: Path) -> np.ndarray:
        if not path.name.endswith(self.ID_SUFFIX):
            return label
        mapped = self.ID_TABLE[label]
        if (mapped < 0).any():
            bad = np.unique(label[mapped < 0]).tolist()
            raise DatasetError(f"label {path} has values {bad}: Cityscapes label ids are 0..{CITYSCAPES_NUM_IDS - 1}")
        return mapped.astype(np.uint8)


class ADE20KDataset(SegDataset):
    """ADE20K (SceneParsing, ``ADEChallengeData2016``): 150 classes; file value 0 ("other") is ignored and the
    rest shift down by one (mmseg's ``reduce_zero_label``).
    """

    NAME = "ADE20K"
    VALUE_HINT = " (file values 1..150, 0 = other)"
    CLASSES = (
        "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed ", "windowpane", "grass", "cabinet",
        "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
        "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
        "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
        "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
        "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
        "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
        "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
        "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
        "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
        "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
        "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
        "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
        "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
        "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
        "glass", "clock", "flag")
    PALETTE = (
        (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80),
        (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7),
        (150, 5, 61), (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4),
        (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
        (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
        (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255),
        (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
        (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
        (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0),
        (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
        (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112), (0, 255, 133),
        (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0),
        (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153),
        (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
        (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
        (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255),
        (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255),
        (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255),
        (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255),
        (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
        (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255),
        (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255),
        (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0),
        (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255),
        (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255))
    TOPS = ("ADEChallengeData2016",)
    MARKERS = ("images", "annotations")
    SPLITS = {"train": "training", "training": "training", "val": "validation", "validation": "validation"}

    def list_samples(self, split: str) -> list[tuple[Path, Path]]:
        folder = self.SPLITS[split]
        image_dir, label_dir = self.root / "images" / folder, self.root / "annotations" / folder
        return [(image, self.label_for(image, label_dir / image.relative_to(image_dir).with_suffix(".png")))
                for image in self.scan(image_dir, ".jpg")]

    def map_label(self, label: np.ndarray, path: Path) -> np.ndarray:
        """mmseg's ``reduce_zero_label``: 0 -> 255, v -> v - 1 (and 255 stays 255)."""
        reduced = label.astype(np.int16) - 1
        reduced[(label == 0) | (label == IGNORE_INDEX)] = IGNORE_INDEX
        return reduced.astype(np.uint8)
