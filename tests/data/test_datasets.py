"""The data set readers: real layouts, decoding, label mapping, and one clear error per kind of bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from isanet.data.datasets import ADE20KDataset, CityscapesDataset, DatasetError, VOCDataset, read_image
from isanet.data.registry import build_dataset, write_sample_dataset
from isanet.data.synthetic import voc_colormap


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    """Pristine synthetic data sets (copied before a test damages one)."""
    out = tmp_path_factory.mktemp("samples")
    return {kind: write_sample_dataset(kind, out / kind, num_train=4, num_val=3, size=64)
            for kind in ("voc", "cityscapes", "ade20k")}


@pytest.fixture()
def voc(samples, tmp_path) -> Path:
    return Path(shutil.copytree(samples["voc"].parents[1], tmp_path / "voc")) / "VOCdevkit" / "VOC2012"


@pytest.fixture()
def cityscapes(samples, tmp_path) -> Path:
    return Path(shutil.copytree(samples["cityscapes"], tmp_path / "cityscapes"))


def _write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


def _raises(match_path: Path | str, *texts: str):
    """``pytest.raises(DatasetError)`` whose message names ``match_path`` and contains every text."""
    return pytest.raises(DatasetError, match="(?s)^" + "".join(f"(?=.*{re.escape(str(text))})"
                                                               for text in (match_path, *texts)))


def test_every_reader_returns_rgb_images_and_mapped_labels(samples):
    for kind, reader in (("voc", VOCDataset), ("cityscapes", CityscapesDataset), ("ade20k", ADE20KDataset)):
        for split, count in (("train", 4), ("val", 3)):
            dataset = build_dataset(kind, samples[kind], split)
            assert isinstance(dataset, reader) and len(dataset) == count
            sample = dataset[0]
            assert sample["image"].dtype == np.uint8 and sample["image"].shape == (*sample["label"].shape, 3)
            values = set(np.unique(sample["label"]).tolist())
            assert values <= set(range(len(reader.CLASSES))) | {255} and Path(sample["path"]).is_file()
    assert len(VOCDataset.CLASSES) == len(VOCDataset.PALETTE) == 21
    assert len(CityscapesDataset.CLASSES) == len(CityscapesDataset.PALETTE) == 19
    assert len(ADE20KDataset.CLASSES) == len(ADE20KDataset.PALETTE) == 150
    assert ADE20KDataset.CLASSES[7] == "bed " and CityscapesDataset.PALETTE[13] == (0, 0, 142)


def test_zoo_dataset_names_and_short_names(samples):
    assert type(build_dataset("Pascal VOC 2012 + Aug", samples["voc"])) is VOCDataset
    assert type(build_dataset("Cityscapes", samples["cityscapes"])) is CityscapesDataset
    assert type(build_dataset("ADE20K", samples["ade20k"])) is ADE20KDataset
    assert type(build_dataset("ADE20k", samples["ade20k"])) is ADE20KDataset
    with pytest.raises(DatasetError, match="unknown data set 'coco'.*cityscapes"):
        build_dataset("coco", samples["voc"])


def test_root_may_be_the_top_folder_or_a_folder_above_it(samples):
    top = samples["voc"]
    for root in (top, top.parent, top.parents[1]):
        assert build_dataset("voc", root).root == top
    assert build_dataset("cityscapes", samples["cityscapes"].parent).root == samples["cityscapes"]
    assert build_dataset("ade20k", samples["ade20k"].parent).root == samples["ade20k"]


def test_voc_train_is_train_then_aug_as_mmseg_concatenates(samples):
    top = samples["voc"]
    lists = {name: (top / "ImageSets/Segmentation" / name).read_text().split() for name in ("train.txt", "aug.txt")}
    dataset = build_dataset("voc", top, "train")
    expected = [(top / "JPEGImages" / f"{n}.jpg", top / "SegmentationClass" / f"{n}.png") for n in lists["train.txt"]]
    expected += [(top / "JPEGImages" / f"{n}.jpg", top / "SegmentationClassAug" / f"{n}.png")
                 for n in lists["aug.txt"]]
    assert dataset.samples == expected and len(lists["aug.txt"]) > 0
    assert [s[0].stem for s in build_dataset("voc", top, "train_voc").samples] == lists["train.txt"]


def test_voc_full_train_aug_list_gives_the_same_aug_part(voc):
    lists = voc / "ImageSets" / "Segmentation"
    reference = build_dataset("voc", voc, "train").samples
    names = lists.joinpath("val.txt").read_text().split()[:1] + lists.joinpath("trainaug.txt").read_text().split()
    (lists / "aug.txt").unlink()
    (lists / "trainaug.txt").unlink()
    (lists / "train_aug.txt").write_text("\n".join(names) + "\n")
    assert build_dataset("voc", voc, "train").samples == reference


def test_voc_palette_labels_read_as_indices(voc):
    dataset = build_dataset("voc", voc, "val")
    label_path = dataset.samples[0][1]
    with Image.open(label_path) as handle:
        assert handle.mode == "P"
    label = np.zeros_like(dataset[0]["label"])
    label[:5], label[-3:] = 15, 255
    image = Image.fromarray(label).convert("P")
    image.putpalette(voc_colormap().flatten().tolist())
    image.save(label_path)
    assert np.array_equal(dataset[0]["label"], label)


def test_images_are_rgb_and_grayscale_or_rgba_become_rgb(cityscapes):
    dataset = build_dataset("cityscapes", cityscapes, "val")
    path = dataset.samples[0][0]
    height, width = dataset[0]["label"].shape
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., 0], rgba[..., 2], rgba[..., 3] = 200, 10, 50
    _write_png(path, rgba)
    assert dataset[0]["image"][0, 0].tolist() == [200, 0, 10]
    _write_png(path, np.full((height, width), 77, np.uint8))
    assert dataset[0]["image"].shape == (height, width, 3) and (dataset[0]["image"] == 77).all()
    bgr = np.zeros((height, width, 3), np.uint8)
    bgr[..., 2] = 255  # OpenCV writes BGR: this file is pure red
    cv2.imwrite(str(path), bgr)
    assert read_image(path)[0, 0].tolist() == [255, 0, 0]


def test_cityscapes_label_ids_are_mapped_to_train_ids(cityscapes):
    with_train_ids = [sample["label"] for sample in build_dataset("cityscapes", cityscapes, "val")]
    for path in cityscapes.rglob("*_labelTrainIds.png"):
        path.unlink()
    dataset = build_dataset("cityscapes", cityscapes, "val")
    assert all(label.name.endswith("_gtFine_labelIds.png") for _, label in dataset.samples)
    assert all(np.array_equal(sample["label"], expected) for sample, expected in zip(dataset, with_train_ids))
    label_path = dataset.samples[0][1]
    ids = np.array([[7, 8, 26, 33], [0, 1, 9, 24]], np.uint8)
    _write_png(dataset.samples[0][0], np.zeros((2, 4, 3), np.uint8))
    _write_png(label_path, ids)
    assert dataset[0]["label"].tolist() == [[0, 1, 13, 18], [255, 255, 255, 11]]
    _write_png(label_path, np.full((2, 4), 40, np.uint8))
    with _raises(label_path, "[40]", "0..33"):
        dataset[0]


def test_cityscapes_samples_are_sorted_like_mmseg(samples):
    paths = [str(image) for image, _ in build_dataset("cityscapes", samples["cityscapes"], "train").samples]
    assert paths == sorted(paths) and {Path(p).parent.name for p in paths} == {"aachen", "bremen"}


def test_ade20k_reduces_the_zero_label(samples, tmp_path):
    top = Path(shutil.copytree(samples["ade20k"], tmp_path / "ADEChallengeData2016"))
    dataset = build_dataset("ade20k", top, "val")
    image_path, label_path = dataset.samples[0]
    cv2.imwrite(str(image_path), np.zeros((1, 4, 3), np.uint8))
    _write_png(label_path, np.array([[0, 1, 150, 255]], np.uint8))
    assert dataset[0]["label"].tolist() == [[255, 0, 149, 255]]
    _write_png(label_path, np.array([[0, 1, 151, 200]], np.uint8))
    with _raises(label_path, "[151, 200]", "150"):
        dataset[0]


# ---- every bad input: one DatasetError that names the file or folder ----

def test_error_for_missing_empty_or_wrong_root(tmp_path):
    with _raises(tmp_path / "nowhere", "does not exist", "JPEGImages"):
        build_dataset("voc", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with _raises(tmp_path / "empty", "is empty", "leftImg8bit and gtFine"):
        build_dataset("cityscapes", tmp_path / "empty")
    (tmp_path / "other" / "stuff").mkdir(parents=True)
    with _raises(tmp_path / "other", "images and annotations", "ADEChallengeData2016"):
        build_dataset("ade20k", tmp_path / "other")


def test_error_for_missing_split_file_and_unknown_split(voc):
    (voc / "ImageSets/Segmentation/val.txt").unlink()
    with _raises(voc / "ImageSets/Segmentation/val.txt", "missing split file"):
        build_dataset("voc", voc, "val")
    for name in ("aug.txt", "trainaug.txt"):
        (voc / "ImageSets/Segmentation" / name).unlink()
    with _raises(voc / "ImageSets/Segmentation/aug.txt", "train_voc"):
        build_dataset("voc", voc, "train")
    with pytest.raises(DatasetError, match="no split 'test'.*train_voc"):
        build_dataset("voc", voc, "test")


def test_error_for_missing_split_folder_and_empty_split(cityscapes):
    with _raises(cityscapes / "leftImg8bit" / "test", "missing folder"):
        build_dataset("cityscapes", cityscapes, "test")
    (cityscapes / "leftImg8bit" / "test").mkdir()
    with _raises(cityscapes, "no test images", "empty"):
        build_dataset("cityscapes", cityscapes, "test")


def test_error_for_image_without_label(voc, cityscapes, samples, tmp_path):
    name = (voc / "ImageSets/Segmentation/val.txt").read_text().split()[0]
    (voc / "SegmentationClass" / f"{name}.png").unlink()
    with _raises(voc / "JPEGImages" / f"{name}.jpg", "has no label", str(voc / "SegmentationClass" / f"{name}.png")):
        build_dataset("voc", voc, "val")
    image = next((cityscapes / "leftImg8bit" / "val").rglob("*.png"))
    for label in (cityscapes / "gtFine" / "val").rglob(image.name.replace("_leftImg8bit.png", "_gtFine_*")):
        label.unlink()
    with _raises(image, "has no label", "_gtFine_labelTrainIds.png", "labelIds"):
        build_dataset("cityscapes", cityscapes, "val")
    ade = Path(shutil.copytree(samples["ade20k"], tmp_path / "ade"))
    next((ade / "annotations" / "training").glob("*.png")).unlink()
    with pytest.raises(DatasetError, match=r"ADE_train_\d+\.jpg has no label: expected .*ADE_train_\d+\.png"):
        build_dataset("ade20k", ade, "train")


def test_error_for_image_listed_but_missing(voc):
    name = (voc / "ImageSets/Segmentation/val.txt").read_text().split()[1]
    (voc / "JPEGImages" / f"{name}.jpg").unlink()
    with _raises(voc / "JPEGImages" / f"{name}.jpg", "missing image"):
        build_dataset("voc", voc, "val")


def test_error_for_label_values_outside_the_classes(voc):
    dataset = build_dataset("voc", voc, "val")
    label_path = dataset.samples[0][1]
    label = dataset[0]["label"].copy()
    label[0, :3] = (21, 30, 255)
    _write_png(label_path, label)
    with _raises(label_path, "[21, 30]", "21", "255 = ignore"):
        dataset[0]


def test_error_for_size_mismatch(voc):
    dataset = build_dataset("voc", voc, "val")
    image_path, label_path = dataset.samples[0]
    _write_png(label_path, np.zeros((7, 9), np.uint8))
    with _raises(image_path, str(label_path), "9x7", "must match"):
        dataset[0]


def test_error_for_unreadable_image_and_label(voc):
    dataset = build_dataset("voc", voc, "val")
    image_path, label_path = dataset.samples[0]
    label_path.write_bytes(b"not a png")
    with _raises(label_path, "cannot read label"):
        dataset[0]
    image_path.write_bytes(b"\xff\xd8 truncated jpeg")
    with _raises(image_path, "cannot read image"):
        dataset[0]
    image_path.write_bytes(b"")
    with _raises(image_path, "cannot read image"):
        dataset[0]


def test_error_for_colour_label(voc):
    dataset = build_dataset("voc", voc, "val")
    image_path, label_path = dataset.samples[0]
    height, width = dataset[0]["label"].shape
    _write_png(label_path, np.zeros((height, width, 3), np.uint8))
    with _raises(label_path, "single-channel"):
        dataset[0]
