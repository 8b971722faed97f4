"""Your own data end to end through the command line: sample-data folder, train --init (classifier
re-initialised to classes.txt), eval with the confusion matrix, on a generated and on a hand-written folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from isanet import build_model, save_checkpoint
from isanet.cli import main
from isanet.io.checkpoint import read_checkpoint
from isanet.models.config import TINY

VOC = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"
pytestmark = pytest.mark.usefixtures("one_thread")
QUICK_TRAIN = ["--tiny", "--iters", "2", "--crop", "32", "32", "--scale", "64", "48", "--batch-size", "2",
               "--eval-every", "2", "--no-progress", "--seed", "0"]


@pytest.fixture(scope="module")
def voc_tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny R-18 VOC (21-class) checkpoint to fine-tune from, standing in for a zoo checkpoint."""
    torch.manual_seed(0)
    return save_checkpoint(build_model(VOC, **TINY), tmp_path_factory.mktemp("init") / "voc_tiny.pth")


def write_by_hand(root: Path) -> Path:
    """The documented layout, written without the generator: 2 classes + ignore, 3 train / 2 val 40x32 images."""
    rng = np.random.default_rng(1)
    for index, split in enumerate(["train"] * 3 + ["val"] * 2):
        mask = np.zeros((32, 40), np.uint8)
        mask[8:24, 10 + index:30] = 1
        mask[:2] = 255
        image = np.where(mask[..., None] == 1, [200, 40, 40], [30, 90, 30]) + rng.integers(0, 20, (32, 40, 3))
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(root / "images" / split / f"leaf_{index}.jpg", quality=95)
        Image.fromarray(mask).save(root / "masks" / split / f"leaf_{index}.png")
    (root / "classes.txt").write_text("soil\nleaf\n")
    return root


def labelled_pixels(root: Path) -> int:
    masks = [np.array(Image.open(path)) for path in sorted((root / "masks" / "val").glob("*.png"))]
    return sum(int((mask != 255).sum()) for mask in masks)


def train_and_eval(root: Path, init: Path, tmp_path: Path, capsys, classes: list[str]) -> dict:
    work = tmp_path / "work"
    assert main(["train", VOC, "--data-root", str(root), "--work-dir", str(work), "--init", str(init),
                 *QUICK_TRAIN]) == 0
    err = capsys.readouterr().err
    assert f"init: whole model from {init}; classifier re-initialised for {len(classes)} classes" in err
    checkpoint = read_checkpoint(work / "latest.pth")
    assert checkpoint["meta"]["dataset_meta"]["classes"] == classes
    assert checkpoint["state_dict"]["decode_head.conv_seg.weight"].shape[0] == len(classes)

    out, picture = tmp_path / "results.json", tmp_path / "confusion.png"
    assert main(["eval", VOC, "--checkpoint", str(work / "latest.pth"), "--data-root", str(root),
                 "--scale", "64", "48", "--out", str(out), "--confusion", str(picture)]) == 0
    printed = capsys.readouterr().out
    assert "most confused" in printed and "your own data" in printed and "published (" not in printed
    record = json.loads(out.read_text())
    confusion = np.array(record["confusion"])
    assert record["classes"] == classes and record["dataset"] == "folder" and "published" not in record
    assert confusion.shape == (len(classes), len(classes)) and confusion.sum() == labelled_pixels(root)
    acc = np.diag(confusion) / confusion.sum(axis=1)
    assert [round(float(v) * 100, 2) for v in acc if not np.isnan(v)] == \
        [v for v in record["Acc"].values() if v is not None]
    with Image.open(picture) as image:
        assert image.format == "PNG"
    return record


def test_sample_folder_train_and_eval(tmp_path, capsys, voc_tiny_checkpoint):
    root = tmp_path / "own"
    assert main(["sample-data", "folder", "--out", str(root), "--num-train", "4", "--num-val", "2",
                 "--size", "48", "--object-classes", "2"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    record = train_and_eval(root, voc_tiny_checkpoint, tmp_path, capsys, ["background", "maroon", "green"])
    assert record["num_images"] == 2


def test_hand_written_folder_train_and_eval(tmp_path, capsys, voc_tiny_checkpoint):
    root = write_by_hand(tmp_path / "leaves")
    record = train_and_eval(root, voc_tiny_checkpoint, tmp_path, capsys, ["soil", "leaf"])
    assert list(record["IoU"]) == ["soil", "leaf"]


def test_bad_pair_stops_eval_in_one_line_or_is_skipped(tmp_path, capsys, voc_tiny_checkpoint):
    root = write_by_hand(tmp_path / "leaves")
    Image.fromarray(np.full((32, 40), 2, np.uint8)).save(root / "masks" / "val" / "leaf_4.png")
    model = build_model(VOC, num_classes=2, **TINY)
    checkpoint = save_checkpoint(model, tmp_path / "two.pth")
    command = ["eval", VOC, "--checkpoint", str(checkpoint), "--data-root", str(root), "--scale", "64", "48"]
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"isanet eval: error: mask {root / 'masks/val/leaf_4.png'} has class ids [2] but "
                   f"{root / 'classes.txt'} lists 2 classes (ids 0..1, 255 = ignore)")
    assert main([*command, "--skip-bad", "--out", str(tmp_path / "r.json")]) == 0
    err = capsys.readouterr().err
    assert f"warning: skipping mask {root / 'masks/val/leaf_4.png'}" in err and "skipped 1 of 2 val images" in err
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["num_images"] == 1 and len(record["skipped"]) == 1


def test_sample_data_folder_refuses_existing_data(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "photo.jpg").write_bytes(b"keep")
    assert main(["sample-data", "folder", "--out", str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is not an empty folder" in err
    assert (tmp_path / "mine" / "photo.jpg").read_bytes() == b"keep"


def test_train_names_a_bad_pair_before_training(tmp_path, capsys):
    root = write_by_hand(tmp_path / "leaves")
    (root / "masks" / "train" / "leaf_1.png").unlink()
    command = ["train", VOC, "--data-root", str(root), "--work-dir", str(tmp_path / "work"), *QUICK_TRAIN]
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"isanet train: error: --data-root {root}: no usable 'train' split of the folder data set: "
                   f"image {root / 'images/train/leaf_1.jpg'} has no mask: expected {root / 'masks/train/leaf_1.png'}")
    assert not (tmp_path / "work" / "latest.pth").exists()
    assert main([*command, "--skip-bad", "--iters", "1", "--eval-every", "1"]) == 0
    assert "skipped 1 of 3 train images" in capsys.readouterr().err
