"""The folder data set (your own data): the documented layout read back exactly, every kind of bad data named in
one line (or skipped with --skip-bad), layout detection, and the synthetic folder sample."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from isanet.data import folder as folder_module
from isanet.data.datasets import DatasetError
from isanet.data.folder import FolderDataset, dataset_kind, is_folder_layout, voc_colormap
from isanet.data.registry import build_dataset, write_sample_dataset
from isanet.data.synthetic import FOLDER_CLASSES
from isanet.evaluation.predict_files import list_inputs
from isanet.io.image import IMAGE_SUFFIXES
from isanet.io.outputs import LEDGER

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("sky", "tree", "road")


def write_pair(root: Path, split: str, name: str, label: np.ndarray, suffix: str = ".png") -> tuple[Path, Path]:
    """An image whose red channel encodes the label (so a read-back can be checked) and its grayscale mask."""
    image = np.stack([label * 40, np.full_like(label, 7), np.arange(label.size, dtype=np.uint8).reshape(label.shape)],
                     axis=-1).astype(np.uint8)
    image_path, mask_path = root / "images" / split / f"{name}{suffix}", root / "masks" / split / f"{name}.png"
    image_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(image_path)
    Image.fromarray(label.astype(np.uint8)).save(mask_path)
    return image_path, mask_path


def labels(seed: int, shape=(6, 8)) -> np.ndarray:
    label = np.random.default_rng(seed).integers(0, len(CLASSES), shape).astype(np.uint8)
    label[0, 0] = 255  # ignore is allowed
    return label


@pytest.fixture()
def root(tmp_path) -> Path:
    """A folder data set written by hand in the documented layout: 3 classes, 2 train + 2 val pairs."""
    top = tmp_path / "mine"
    for index, split in enumerate(("train", "train", "val", "val")):
        write_pair(top, split, f"photo_{index}", labels(index))
    (top / "classes.txt").write_text("".join(f"{name}\n" for name in CLASSES))
    return top


def check_one_line(error: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(error.value)
    assert "\n" not in message and all(part in message for part in parts), message
    return message


def test_hand_written_layout_reads_back_exactly(root):
    train, val = FolderDataset(root, "train"), build_dataset("folder", root, "val")
    assert isinstance(val, FolderDataset) and val.CLASSES == CLASSES and val.num_classes == 3
    assert val.PALETTE == ((0, 0, 0), (128, 0, 0), (0, 128, 0))  # VOC's colour map when there is no palette.txt
    assert [Path(image).name for image, _ in train.samples] == ["photo_0.png", "photo_1.png"]
    sample = val[1]
    assert sample["path"].endswith("photo_3.png") and sample["label"].dtype == np.uint8
    np.testing.assert_array_equal(sample["label"], labels(3))
    np.testing.assert_array_equal(sample["image"][..., 0], (labels(3) * 40).astype(np.uint8))
    np.testing.assert_array_equal(sample["image"][..., 1], 7)


def test_palette_txt_and_jpeg_images_in_subfolders(root):
    (root / "palette.txt").write_text("10 20 30\n40,50,60\n255 0 255\n")
    write_pair(root, "val", "city/photo_9", labels(9), suffix=".JPEG")
    dataset = FolderDataset(root, "val")
    assert dataset.PALETTE == ((10, 20, 30), (40, 50, 60), (255, 0, 255))
    assert [Path(image).relative_to(root).as_posix() for image, _ in dataset.samples][0] == \
        "images/val/city/photo_9.JPEG"
    assert dataset[0]["image"].shape == (6, 8, 3)


def test_every_format_the_image_reader_decodes_is_listed_and_read(tmp_path):
    """One suffix list for the folder data set and ``isanet predict DIR``: an image format the reader decodes is
    never skipped here (the data set once took .jpg/.jpeg/.png only, where ``isanet predict`` took nine)."""
    root = tmp_path / "formats"
    for index, suffix in enumerate(IMAGE_SUFFIXES):
        write_pair(root, "val", f"photo_{index}", labels(index), suffix=suffix)
    (root / "images" / "val" / "notes.txt").write_text("not an image")
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in CLASSES))
    dataset = FolderDataset(root, "val")
    assert [Path(image).suffix for image, _ in dataset.samples] == list(IMAGE_SUFFIXES)
    assert list_inputs(root / "images" / "val") == [Path(image) for image, _ in dataset.samples]
    lossy = {".jpg", ".jpeg", ".webp"}  # Pillow's default for these is lossy: only the size is exact
    for index, suffix in enumerate(IMAGE_SUFFIXES):
        sample = dataset[index]
        np.testing.assert_array_equal(sample["label"], labels(index))
        assert sample["image"].shape == (6, 8, 3)
        if suffix not in lossy:
            np.testing.assert_array_equal(sample["image"][..., 0], (labels(index) * 40).astype(np.uint8))


def test_layout_docs_name_exactly_the_listed_formats():
    listed = " ".join(IMAGE_SUFFIXES[1:])  # ".jpeg .png ...": the docs show NAME.jpg, then the others
    for text in (folder_module.__doc__, (REPO / "README.md").read_text()):
        assert f"NAME.jpg (or {listed}; sub-folders allowed)" in re.sub(r"  +", " ", text)


@pytest.mark.parametrize("content, problem", [
    ("1 2 3\n4 5 6\n", "has 2 lines but classes.txt lists 3 classes"),
    ("1 2 3\n4 5 6\n7 8 256\n", "line 3 is '7 8 256': expected three numbers 0..255"),
    ("1 2 3\nred\n7 8 9\n", "line 2 is 'red'")])
def test_bad_palette_is_named(root, content, problem):
    (root / "palette.txt").write_text(content)
    with pytest.raises(DatasetError) as error:
        FolderDataset(root)
    check_one_line(error, str(root / "palette.txt"), problem)


@pytest.mark.parametrize("content, problem", [
    ("sky\n\nroad\n", "line 2 is empty"), ("sky\nroad\nsky\n", "names ['sky'] more than once"),
    ("".join(f"c{i}\n" for i in range(256)), "lists 256 classes: at most 255")])
def test_bad_classes_txt_is_named(root, content, problem):
    (root / "classes.txt").write_text(content)
    with pytest.raises(DatasetError) as error:
        FolderDataset(root)
    check_one_line(error, str(root / "classes.txt"), problem)


def test_missing_layout_parts_are_named(root, tmp_path):
    (root / "classes.txt").unlink()
    with pytest.raises(DatasetError) as error:
        FolderDataset(root)
    check_one_line(error, f"{root} is not a folder data set: it has no classes.txt", "ROOT/masks/{train,val}/")
    with pytest.raises(DatasetError) as error:
        FolderDataset(tmp_path / "nowhere")
    check_one_line(error, "does not exist")


def test_image_without_mask(root):
    (root / "masks" / "val" / "photo_3.png").unlink()
    with pytest.raises(DatasetError) as error:
        FolderDataset(root, "val")
    check_one_line(error, f"image {root / 'images/val/photo_3.png'} has no mask: expected "
                          f"{root / 'masks/val/photo_3.png'}")


def test_mask_size_differs_from_image(root):
    Image.fromarray(np.zeros((6, 9), np.uint8)).save(root / "masks" / "val" / "photo_2.png")
    with pytest.raises(DatasetError) as error:
        FolderDataset(root, "val")
    check_one_line(error, f"mask {root / 'masks/val/photo_2.png'} is 9x6 but its image "
                          f"{root / 'images/val/photo_2.png'} is 8x6: they must match")


def test_class_id_beyond_classes_txt(root):
    label = labels(2)
    label[1, 1], label[2, 2] = 3, 9  # 3 classes: ids 0..2; 255 elsewhere is fine
    Image.fromarray(label).save(root / "masks" / "val" / "photo_2.png")
    with pytest.raises(DatasetError) as error:
        FolderDataset(root, "val")
    check_one_line(error, f"mask {root / 'masks/val/photo_2.png'} has class ids [3, 9]",
                   "lists 3 classes (ids 0..2, 255 = ignore)")


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA"])
def test_multi_channel_mask(root, mode):
    Image.fromarray(labels(2)).convert(mode).save(root / "masks" / "val" / "photo_2.png")
    with pytest.raises(DatasetError) as error:
        FolderDataset(root, "val")
    check_one_line(error, f"mask {root / 'masks/val/photo_2.png'} has {len(mode)} channels ({mode})",
                   "single-channel")


def test_palette_mask_is_single_channel(root):
    image = Image.fromarray(labels(2)).convert("P")
    image.putpalette(voc_colormap().flatten().tolist())
    image.save(root / "masks" / "val" / "photo_2.png")
    np.testing.assert_array_equal(FolderDataset(root, "val")[0]["label"], labels(2))


@pytest.mark.parametrize("which", ["images/val/photo_2.png", "masks/val/photo_2.png"])
def test_unreadable_file(root, which):
    (root / which).write_bytes(b"not a picture at all")
    with pytest.raises(DatasetError) as error:
        FolderDataset(root, "val")
    check_one_line(error, f"cannot read {which.split('s/')[0]} {root / which}")


def test_two_images_one_mask_name(root):
    write_pair(root, "val", "photo_2", labels(2), suffix=".jpg")
    with pytest.raises(DatasetError) as error:
        FolderDataset(root, "val")
    check_one_line(error, "would share the mask", str(root / "masks/val/photo_2.png"))


def test_corrupt_pixels_behind_a_good_header_are_named_on_read(root):
    path = root / "images" / "val" / "photo_2.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (6, 8, 3)).astype(np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:60])  # the header (size) intact, the pixel data cut
    dataset = FolderDataset(root, "val")  # headers only: the check passes
    with pytest.raises(DatasetError, match=re.escape(f"cannot decode image {path}: not a readable image file")):
        dataset[0]


def test_skip_bad_warns_per_file_and_counts(root, capsys):
    (root / "masks" / "train" / "photo_0.png").unlink()
    write_pair(root, "train", "photo_5", labels(5))
    Image.fromarray(np.full((6, 8), 4, np.uint8)).save(root / "masks" / "train" / "photo_5.png")
    write_pair(root, "train", "photo_6", labels(6))
    with pytest.raises(DatasetError):
        FolderDataset(root, "train")
    capsys.readouterr()
    dataset = FolderDataset(root, "train", skip_bad=True)
    assert [Path(image).name for image, _ in dataset.samples] == ["photo_1.png", "photo_6.png"]
    assert len(dataset.skipped) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: skipping {dataset.skipped[0]}", f"warning: skipping {dataset.skipped[1]}",
                   f"warning: skipped 2 of 4 train images of {root} (--skip-bad)"]
    assert "has no mask" in dataset.skipped[0] and "class ids [4]" in dataset.skipped[1]


def test_skip_bad_with_nothing_left_is_an_error(root):
    for path in (root / "masks" / "val").iterdir():
        path.unlink()
    with pytest.raises(DatasetError, match="no val images found under"):
        FolderDataset(root, "val", skip_bad=True)


def test_exif_rotated_jpeg_is_checked_at_its_decoded_size(root):
    """A phone photo stored 8x6 with EXIF 'rotate 90' decodes 6x8 (as OpenCV and mmcv read it): its mask is 6x8."""
    path = root / "images" / "val" / "photo_2.jpg"
    (root / "images" / "val" / "photo_2.png").unlink()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(path, exif=exif)
    Image.fromarray(np.zeros((8, 6), np.uint8)).save(root / "masks" / "val" / "photo_2.png")
    dataset = FolderDataset(root, "val")
    assert dataset[0]["image"].shape == (8, 6, 3) and dataset[0]["label"].shape == (8, 6)


def test_layout_detection(root, tmp_path):
    assert is_folder_layout(root) and not is_folder_layout(tmp_path)
    assert dataset_kind(None, root, "voc") == "folder"
    assert dataset_kind(None, tmp_path, "voc") == "voc"
    assert dataset_kind("cityscapes", root, "voc") == "cityscapes"


def test_sample_generator_writes_the_layout(tmp_path):
    top = write_sample_dataset("folder", tmp_path / "own", num_train=3, num_val=2, size=48, object_classes=2)
    assert top == tmp_path / "own" and "SYNTHETIC" in (top / "SAMPLE_DATA.txt").read_text()
    train, val = FolderDataset(top, "train"), FolderDataset(top, "val")
    assert (len(train), len(val)) == (3, 2) and FOLDER_CLASSES[:3] == train.CLASSES
    assert train.PALETTE == ((0, 0, 0), (128, 0, 0), (0, 128, 0))  # written to palette.txt
    seen = set()
    for sample in [*train, *val]:
        assert sample["image"].shape[:2] == sample["label"].shape and sample["image"].shape[1] == 48
        seen |= set(np.unique(sample["label"]).tolist())
    assert seen == {0, 1, 2}


def test_sample_generator_never_writes_into_existing_data(tmp_path):
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not an empty folder"):
        write_sample_dataset("folder", tmp_path / "own")
    assert [path.name for path in (tmp_path / "own").iterdir()] == ["keep.txt"]
    assert sorted(path.name for path in tmp_path.iterdir() if path.name != LEDGER) == ["own"]  # no staging left
    (tmp_path / "empty").mkdir()
    assert is_folder_layout(write_sample_dataset("folder", tmp_path / "empty", num_train=1, num_val=1, size=16))


def test_notebook_dataset_parameter_accepts_folder(tmp_path, capsys):
    """What a notebook does with DATASET = "folder" and no DATA_ROOT: a cached synthetic sample, then the reader."""
    from isanet.notebook.session import sample_dataset

    top = sample_dataset("folder", tmp_path, num_train=1, num_val=2, size=32)
    assert "USING SYNTHETIC SAMPLE DATA (folder" in capsys.readouterr().out
    assert top == tmp_path / "data" / "samples" / "folder-32px-1+2-seed0" and is_folder_layout(top)
    assert len(build_dataset("folder", top, split="val")) == 2
    assert sample_dataset("folder", tmp_path, num_train=1, num_val=2, size=32, quiet=True) == top  # reused
