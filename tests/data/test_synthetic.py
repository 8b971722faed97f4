"""Synthetic sample data: the real layouts, determinism, VOC borders, Cityscapes ids, and learnable classes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from isanet.data.datasets import CityscapesDataset
from isanet.data.registry import build_dataset, write_sample_dataset
from isanet.data.synthetic import (
    class_texture,
    deal_classes,
    render,
    voc_colormap,
    void_border,
)


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_voc_layout_and_splits(tmp_path):
    top = write_sample_dataset("voc", tmp_path, num_train=5, num_val=2, size=48)
    assert top == tmp_path / "VOCdevkit" / "VOC2012"
    lists = {name: (top / "ImageSets/Segmentation" / name).read_text().split()
             for name in ("train.txt", "val.txt", "aug.txt", "trainaug.txt")}
    assert len(lists["train.txt"]) == 3 and len(lists["aug.txt"]) == 2 and len(lists["val.txt"]) == 2
    assert lists["trainaug.txt"] == lists["train.txt"] + lists["aug.txt"]
    for name in lists["train.txt"] + lists["val.txt"]:
        assert (top / "JPEGImages" / f"{name}.jpg").is_file() and (top / "SegmentationClass" / f"{name}.png").is_file()
    for name in lists["aug.txt"]:
        assert not (top / "SegmentationClass" / f"{name}.png").exists()
    assert all((top / "SegmentationClassAug" / f"{name}.png").is_file() for name in lists["trainaug.txt"])
    assert "synthetic" in (top / "SAMPLE_DATA.txt").read_text().lower()


def test_voc_labels_have_void_borders_and_the_voc_palette(tmp_path):
    top = write_sample_dataset("voc", tmp_path, num_train=2, num_val=4, size=64)
    name = (top / "ImageSets/Segmentation/train.txt").read_text().split()[0]
    with Image.open(top / "SegmentationClass" / f"{name}.png") as handle:
        assert handle.mode == "P" and handle.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
        bordered = np.array(handle)
    plain = np.array(Image.open(top / "SegmentationClassAug" / f"{name}.png"))
    assert 255 not in plain and (bordered[bordered != 255] == plain[bordered != 255]).all()
    assert ((bordered == 255) == (void_border(plain) == 255)).all()
    assert voc_colormap()[255].tolist() == [224, 224, 192] and voc_colormap()[15].tolist() == [192, 128, 128]


def test_deal_classes_gives_every_class_about_equally_often():
    counts = np.array([3, 5, 4, 3, 5, 4, 3])  # 27 objects for 20 classes: one round and 7 of the next
    dealt = deal_classes(np.random.default_rng(0), counts, 20)
    assert [len(classes) for classes in dealt] == counts.tolist()
    frequency = np.bincount(np.concatenate(dealt), minlength=21)
    assert frequency[0] == 0 and sorted(frequency[1:].tolist()) == [1] * 13 + [2] * 7


def _object_classes(top: Path, split: str) -> set[int]:
    return set().union(*(np.unique(sample["label"]).tolist() for sample in build_dataset("voc", top, split))) - {0, 255}


def test_voc_objects_cover_the_classes_of_each_split(tmp_path):
    """Seven val images have at least 21 objects: every object class is drawn there, and in training."""
    top = write_sample_dataset("voc", tmp_path / "all", num_train=14, num_val=7, size=128)
    assert all(len(_object_classes(top, split)) >= 18 for split in ("train", "val"))  # a shape may hide another
    few = write_sample_dataset("voc", tmp_path / "few", num_train=4, num_val=2, size=64, object_classes=3)
    assert _object_classes(few, "train") == _object_classes(few, "val") == {1, 2, 3}


def test_void_border_marks_where_classes_meet():
    label = np.zeros((9, 9), np.uint8)
    label[:, 5:] = 3
    bordered = void_border(label, width=3)
    assert (bordered[:, 4:6] == 255).all() and (bordered[:, :4] == 0).all() and (bordered[:, 6:] == 3).all()


def test_cityscapes_writes_ids_and_matching_train_ids(tmp_path):
    top = write_sample_dataset("cityscapes", tmp_path, num_train=3, num_val=2, size=64)
    images = sorted((top / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    assert [p.parent.name for p in images] == ["frankfurt", "lindau"]
    for image in images:
        stem = top / "gtFine" / "val" / image.parent.name / image.name.replace("_leftImg8bit.png", "")
        ids = np.array(Image.open(f"{stem}_gtFine_labelIds.png"))
        train_ids = np.array(Image.open(f"{stem}_gtFine_labelTrainIds.png"))
        assert np.array_equal(train_ids, CityscapesDataset.ID_TABLE[ids]) and ids.shape == (32, 64)
        assert (ids[-2:] == 1).all() and (train_ids[-2:] == 255).all()  # the ego vehicle has no train id
    only_ids = write_sample_dataset("cityscapes", tmp_path / "ids", num_train=1, num_val=1, label_ids_only=True)
    assert not list(only_ids.rglob("*labelTrainIds.png")) and len(list(only_ids.rglob("*labelIds.png"))) == 2


def test_ade20k_layout_uses_zero_for_other(tmp_path):
    top = write_sample_dataset("ade20k", tmp_path, num_train=6, num_val=2, size=48)
    assert sorted(p.name for p in (top / "images" / "validation").iterdir()) == ["ADE_val_00000001.jpg",
                                                                                "ADE_val_00000002.jpg"]
    labels = [np.array(Image.open(path)) for path in (top / "annotations" / "training").glob("*.png")]
    assert len(labels) == 6 and any((label == 0).any() for label in labels)
    assert max(label.max() for label in labels) <= 150


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    for kind in ("voc", "cityscapes", "ade20k"):
        first = _files(write_sample_dataset(kind, tmp_path / "a" / kind, num_train=2, num_val=1, size=32, seed=5))
        again = _files(write_sample_dataset(kind, tmp_path / "b" / kind, num_train=2, num_val=1, size=32, seed=5))
        other = _files(write_sample_dataset(kind, tmp_path / "c" / kind, num_train=2, num_val=1, size=32, seed=6))
        assert first == again
        assert first.keys() == other.keys() and first != other


def test_each_class_has_one_appearance():
    appearance = np.zeros((24, 24), np.int64)
    appearance[:, 12:] = 7
    colours = np.full((256, 3), 120, np.uint8)
    first, second = (render(appearance, colours, np.random.default_rng(seed)).astype(float) for seed in (0, 1))
    # same class, different images: only the global light level (+-10%) and pixel noise differ
    assert np.abs(first[:, :12].mean(axis=(0, 1)) - second[:, :12].mean(axis=(0, 1))).max() < 15
    # same colour, different classes: each region carries its own class's stripes and not the other's
    textures = {value: class_texture(appearance.shape, value) for value in (0, 7)}
    for value, region in ((0, np.s_[:, :12]), (7, np.s_[:, 12:])):
        grey = first[region].mean(axis=-1).ravel()
        own, other = (np.corrcoef(grey, textures[v][region].ravel())[0, 1] for v in (value, 7 - value))
        assert own > 0.9 and abs(other) < 0.3


@pytest.mark.parametrize("kind, floor", [("voc", 0.9), ("cityscapes", 0.6), ("ade20k", 0.4)])
def test_classes_are_learnable_from_colour_alone(tmp_path, kind, floor):
    """A nearest-mean-colour classifier fitted on train pixels labels val pixels of the seen classes."""
    top = write_sample_dataset(kind, tmp_path, num_train=8, num_val=4, size=64)
    train, val = build_dataset(kind, top, "train"), build_dataset(kind, top, "val")
    sums, counts = np.zeros((train.num_classes, 3)), np.zeros(train.num_classes)

    def smooth(image):
        return cv2.blur(image.astype(np.float32), (7, 7))

    for sample in train:
        keep = sample["label"] != 255
        np.add.at(sums, sample["label"][keep], smooth(sample["image"])[keep])
        np.add.at(counts, sample["label"][keep], 1)
    seen = counts > 0
    means = np.where(seen[:, None], sums / np.maximum(counts, 1)[:, None], 1e6)
    right = total = 0
    for sample in val:
        label = sample["label"].astype(int)
        keep = (label != 255) & seen[np.minimum(label, train.num_classes - 1)]
        guess = ((smooth(sample["image"])[..., None, :] - means) ** 2).sum(-1).argmin(-1)
        right, total = right + (guess[keep] == label[keep]).sum(), total + keep.sum()
    assert total > 100 and right / total > floor


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown sample data set 'coco'"):
        write_sample_dataset("coco", tmp_path)
    with pytest.raises(ValueError, match="Cityscapes only"):
        write_sample_dataset("voc", tmp_path, label_ids_only=True)
    with pytest.raises(ValueError, match="at least one"):
        write_sample_dataset("ade20k", tmp_path, num_val=0)
    for kind, classes in (("cityscapes", 5), ("voc", 0), ("voc", 21), ("folder", 8)):
        with pytest.raises(ValueError, match=r"applies to voc \(1 to 20\) and folder \(1 to 7\) samples only, "
                                             f"got {classes} for {kind}"):
            write_sample_dataset(kind, tmp_path, object_classes=classes)
