"""Small synthetic data sets in exactly the real on-disk layouts, for tests, demos and smoke runs.

The real data sets are large and licensed; these let every reader, transform, the evaluator and the trainer
run end to end in seconds. Each class has one consistent look (its palette colour plus a stripe texture whose
angle and period depend only on the class), drawn as regions and shapes with per-image noise, so a model can
learn it; nothing here says anything about the published models. Pascal VOC images hold 3-5 objects whose
classes are dealt out in shuffled rounds per split, so that a split of seven or more images draws every
object class, and each about equally often (a later shape may still hide an earlier one);
``object_classes`` limits them to the first few (a tiny model trained for a few CPU minutes from random
weights learns five such classes, but not twenty). VOC gets the 255 "void" borders around objects that its
real labels have (its SBD-style aug labels do not), Cityscapes gets both ``labelIds`` and ``labelTrainIds``
(including ids without a train id, such as the ego vehicle), ADE20K uses file value 0 for "other".
Everything is a function of ``seed``. Each writer here draws one layout into a given folder; which writer
belongs to which data set, and where its top folder goes, is :data:`isanet.data.registry.DATASETS`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from isanet.data.datasets import (
    CITYSCAPES_ID_TO_TRAIN_ID,
    IGNORE_INDEX,
    ADE20KDataset,
    CityscapesDataset,
    VOCDataset,
)
from isanet.data.folder import voc_colormap

VOID_BORDER = 5  # pixels: the width of the 255 band VOC draws along object outlines


def class_texture(shape: tuple[int, int], appearance: int) -> np.ndarray:
    """Stripes whose angle and period belong to ``appearance`` alone (the same on every image)."""
    angle, period = np.pi * (appearance * 5 % 8) / 8, 3.0 + appearance * 7 % 9
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    return np.sin(2 * np.pi * (cols * np.cos(angle) + rows * np.sin(angle)) / period)


def render(appearance: np.ndarray, colours: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An RGB image for a map of appearance ids: colour + class texture, a global light level, pixel noise."""
    image = colours[appearance].astype(np.float32)
    for value in np.unique(appearance):
        mask = appearance == value
        image[mask] += 30 * class_texture(appearance.shape, int(value))[mask, None]
    image = image * rng.uniform(0.9, 1.1) + rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw_shape(label: np.ndarray, value: int, rng: np.random.Generator) -> None:
    """A random ellipse, rectangle or triangle of class ``value``, 15-50% of the image across."""
    height, width = label.shape
    center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
    axes = (int(rng.integers(width // 7, width // 2)), int(rng.integers(height // 7, height // 2)))
    kind = rng.integers(3)
    if kind == 0:
        cv2.ellipse(label, center, (axes[0] // 2, axes[1] // 2), float(rng.uniform(0, 180)), 0, 360, value, -1)
    elif kind == 1:
        cv2.rectangle(label, (center[0] - axes[0] // 2, center[1] - axes[1] // 2),
                      (center[0] + axes[0] // 2, center[1] + axes[1] // 2), value, -1)
    else:
        corners = np.array(center) + rng.integers(-axes[0], axes[0] + 1, size=(3, 2))
        cv2.fillPoly(label, [corners.astype(np.int32)], value)


def void_border(label: np.ndarray, width: int = VOID_BORDER) -> np.ndarray:
    """``label`` with 255 on a band of about ``width`` pixels wherever two classes meet (VOC's outlines)."""
    kernel = np.ones((width, width), np.uint8)
    bordered = label.copy()
    bordered[cv2.dilate(label, kernel) != cv2.erode(label, kernel)] = IGNORE_INDEX
    return bordered


def deal_classes(rng: np.random.Generator, counts: np.ndarray, num_classes: int) -> list[np.ndarray]:
    """The classes (``1 .. num_classes``) of image ``i``'s ``counts[i]`` objects: shuffled rounds of all of
    them dealt out in turn, so that every class appears about equally often in a set of images, and at least
    once when it has ``num_classes`` objects. Drawn one by one, many classes of a small sample would show up
    in only one of its splits."""
    total = int(counts.sum())
    rounds = [rng.permutation(np.arange(1, num_classes + 1)) for _ in range(-(-total // num_classes))]
    return np.split(np.concatenate(rounds)[:total], np.cumsum(counts)[:-1])


def _voc_layout(rng: np.random.Generator, height: int, width: int, classes: np.ndarray) -> np.ndarray:
    """Background with one shape per entry of ``classes``, later ones on top."""
    label = np.zeros((height, width), np.uint8)
    for value in classes:
        _draw_shape(label, int(value), rng)
    return label


CITYSCAPES_TRAIN_TO_ID = {train: label_id for label_id, train in CITYSCAPES_ID_TO_TRAIN_ID.items()}
SKY, BUILDING, SIDEWALK, ROAD, EGO_VEHICLE, PARKING = 23, 11, 8, 7, 1, 9  # Cityscapes label ids


def _cityscapes_layout(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Label ids: sky, buildings, sidewalk and road bands, objects of any class, a parking patch and the
    ego vehicle's bonnet (the last two have no train id: 255 in ``labelTrainIds``)."""
    bottoms = np.sort(rng.uniform([0.2, 0.45, 0.55], [0.35, 0.55, 0.65])) * height
    band = np.array([SKY, BUILDING, SIDEWALK, ROAD], np.uint8)[np.digitize(np.arange(height), bottoms)]
    ids = np.repeat(band[:, None], width, axis=1)
    for _ in range(rng.integers(2, 6)):
        _draw_shape(ids, CITYSCAPES_TRAIN_TO_ID[int(rng.integers(len(CityscapesDataset.CLASSES)))], rng)
    if rng.random() < 0.5:
        _draw_shape(ids, PARKING, rng)
    ids[int(height * 0.92):] = EGO_VEHICLE
    return ids


def _ade_layout(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """File values: a few nearest-seed regions (some of them 0 = "other") with shapes on top."""
    seeds = rng.uniform([0, 0], [height, width], size=(int(rng.integers(3, 7)), 2))
    values = np.where(rng.random(len(seeds)) < 0.2, 0, rng.integers(1, len(ADE20KDataset.CLASSES) + 1, len(seeds)))
    rows, cols = np.mgrid[:height, :width]
    nearest = np.argmin((rows[..., None] - seeds[:, 0]) ** 2 + (cols[..., None] - seeds[:, 1]) ** 2, axis=-1)
    label = values[nearest].astype(np.uint8)
    for _ in range(rng.integers(0, 3)):
        _draw_shape(label, int(rng.integers(1, len(ADE20KDataset.CLASSES) + 1)), rng)
    return label


def _colours(palette: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """256 appearance colours: the data set's palette where it has one, a fixed grey ramp elsewhere."""
    colours = np.array([(40 + value * 37 % 160,) * 3 for value in range(256)], dtype=np.uint8)
    for value, colour in palette.items():
        colours[value] = colour
    return colours


def write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    quality = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), quality):
        raise OSError(f"could not write {path}")


def write_label(path: Path, label: np.ndarray, palette: np.ndarray | None = None) -> None:
    """An 8-bit PNG of class values: grayscale, or palette-indexed as VOC's ``SegmentationClass`` files are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(label.astype(np.uint8))
    if palette is not None:
        image = image.convert("P")
        image.putpalette(palette.flatten().tolist())
    image.save(path)


def _sizes(rng: np.random.Generator, count: int, size: int, aspect: float, vary: bool) -> list[tuple[int, int]]:
    """``(height, width)`` per image: ``size`` wide, ``size * aspect`` high, the height varied by up to 1/8."""
    jitter = rng.integers(-(size // 8), size // 8 + 1, count) if vary else np.zeros(count, int)
    return [(int(size * aspect) + int(delta), size) for delta in jitter]


def write_voc(top: Path, num_train: int, num_val: int, size: int, rng: np.random.Generator,
               object_classes: int = len(VOCDataset.CLASSES) - 1) -> Path:
    """The VOC layout under ``top`` (its ``VOCdevkit/VOC2012``): 3-5 objects per image from the first
    ``object_classes`` classes, void borders, palette labels and the split lists, as the real files are."""
    names = [f"{2007 + index % 6}_{index:06d}" for index in range(num_train + num_val)]
    val, train = names[:num_val], names[num_val:]
    voc_train, aug = train[:(len(train) + 1) // 2], train[(len(train) + 1) // 2:]
    colours, palette = _colours({i: c for i, c in enumerate(VOCDataset.PALETTE)}), voc_colormap()
    counts = rng.integers(3, 6, len(names))
    classes = [*deal_classes(rng, counts[:num_val], object_classes),
               *deal_classes(rng, counts[num_val:], object_classes)]
    for name, (height, width), objects in zip(names, _sizes(rng, len(names), size, 0.75, vary=True), classes):
        label = _voc_layout(rng, height, width, objects)
        write_image(top / "JPEGImages" / f"{name}.jpg", render(label, colours, rng))
        if name not in aug:
            write_label(top / "SegmentationClass" / f"{name}.png", void_border(label), palette)
        if name in train:
            write_label(top / "SegmentationClassAug" / f"{name}.png", label)
    lists = {"train.txt": voc_train, "val.txt": val, "aug.txt": aug, "trainaug.txt": train}
    for file_name, items in lists.items():
        (top / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
        (top / "ImageSets" / "Segmentation" / file_name).write_text("".join(f"{item}\n" for item in items))
    return top


def write_cityscapes(top: Path, num_train: int, num_val: int, size: int, rng: np.random.Generator,
                      label_ids_only: bool = False) -> Path:
    """The Cityscapes layout under ``top``: images in city folders with ``labelIds`` and (unless
    ``label_ids_only``) ``labelTrainIds``, so that both of the reader's label paths are exercised."""
    palette = {CITYSCAPES_TRAIN_TO_ID[train]: colour for train, colour in enumerate(CityscapesDataset.PALETTE)}
    colours = _colours(palette)
    for split, count, cities in (("train", num_train, ("aachen", "bremen")), ("val", num_val, ("frankfurt", "lindau"))):
        for index, (height, width) in enumerate(_sizes(rng, count, size, 0.5, vary=False)):
            city = cities[index % len(cities)]
            stem = f"{city}/{city}_{index:06d}_000019"
            ids = _cityscapes_layout(rng, height, width)
            write_image(top / "leftImg8bit" / split / f"{stem}_leftImg8bit.png", render(ids, colours, rng))
            write_label(top / "gtFine" / split / f"{stem}_gtFine_labelIds.png", ids)
            if not label_ids_only:
                write_label(top / "gtFine" / split / f"{stem}_gtFine_labelTrainIds.png",
                             CityscapesDataset.ID_TABLE[ids])
    return top


def write_ade20k(top: Path, num_train: int, num_val: int, size: int, rng: np.random.Generator) -> Path:
    """The ADE20K layout under ``top``: ``images`` and ``annotations`` per split, file value 0 for "other"
    (which the reader reduces away, as mmseg does)."""
    colours = _colours({i + 1: c for i, c in enumerate(ADE20KDataset.PALETTE)})
    for split, prefix, count in (("training", "ADE_train", num_train), ("validation", "ADE_val", num_val)):
        for index, (height, width) in enumerate(_sizes(rng, count, size, 0.75, vary=True)):
            label = _ade_layout(rng, height, width)
            write_image(top / "images" / split / f"{prefix}_{index + 1:08d}.jpg", render(label, colours, rng))
            write_label(top / "annotations" / split / f"{prefix}_{index + 1:08d}.png", label)
    return top


#: The class names of the synthetic folder data set: colours of the VOC colour map that its palette.txt uses.
FOLDER_CLASSES = ("background", "maroon", "green", "olive", "navy", "purple", "teal", "grey")
FOLDER_OBJECT_CLASSES = 4  # default: background + 4 object classes, learnable by a tiny model in CPU minutes


def write_folder(root: Path, num_train: int, num_val: int, size: int, rng: np.random.Generator,
                  object_classes: int = FOLDER_OBJECT_CLASSES) -> Path:
    """The folder layout of :mod:`isanet.data.folder`: VOC-like pictures (3-5 shapes on a background) with
    grayscale masks, ``classes.txt`` and ``palette.txt``; ``root`` itself is the data set's root."""
    names, palette = FOLDER_CLASSES[:object_classes + 1], voc_colormap()[:object_classes + 1]
    colours = _colours(dict(enumerate(map(tuple, palette))))
    counts = rng.integers(3, 6, num_train + num_val)
    classes = [*deal_classes(rng, counts[:num_val], object_classes),
               *deal_classes(rng, counts[num_val:], object_classes)]
    splits = ["val"] * num_val + ["train"] * num_train
    sizes = _sizes(rng, num_train + num_val, size, 0.75, vary=True)
    for index, (split, (height, width), objects) in enumerate(zip(splits, sizes, classes)):
        label = _voc_layout(rng, height, width, objects)
        write_image(root / "images" / split / f"sample_{index:04d}.jpg", render(label, colours, rng))
        write_label(root / "masks" / split / f"sample_{index:04d}.png", label)
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in names))
    (root / "palette.txt").write_text("".join(f"{r} {g} {b}\n" for r, g, b in palette))
    return root
