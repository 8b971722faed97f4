"""What isanet guarantees about files a user gives (continued from tests/test_bad_inputs.py): the one bounded
image reader, predict's outputs (unique per input, never a user's file, never its own outputs as inputs), the
ledger of the kit's own outputs, and the bench's bounds. Everything is small and runs on one thread."""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import isanet
from isanet.analysis.model_bench import Variant, bench_model
from isanet.cli import main
from isanet.data.datasets import DatasetError
from isanet.data.folder import FolderDataset, read_classes
from isanet.data.registry import write_sample_dataset
from isanet.io.atomic import write_text_atomic
from isanet.io.checkpoint import save_checkpoint
from isanet.io.image import ImageError, read_image
from isanet.io.outputs import check_output, written_by_kit
from isanet.models.zoo import get_entry

pytestmark = pytest.mark.usefixtures("one_thread")
VOC = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"
QUICK = ["--scale", "64", "48", "--no-progress"]


def huge_header_png(path: Path, side: int = 100_000) -> Path:
    """A 1x1 PNG whose header claims ``side x side`` pixels (the IHDR rewritten, its CRC fixed)."""
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = struct.pack(">II", side, side) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    path.write_bytes(bytes(data))
    return path


def picture(path: Path, value: int = 0) -> Path:
    Image.fromarray(np.full((48, 64, 3), value, np.uint8)).save(path)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=21)),
                           tmp_path_factory.mktemp("ckpt") / "tiny.pth")


def predict(folder: Path, out: Path, checkpoint: Path) -> int:
    return main(["predict", str(folder), "--model", VOC, "--checkpoint", str(checkpoint), "--out", str(out), *QUICK])


# ---------------------------------------------------------------- the one image reader

def test_a_huge_header_is_refused_before_decoding(tmp_path):
    path = huge_header_png(tmp_path / "bomb.png")
    with pytest.raises(ImageError, match=r"is too large to decode|a side is at most 8192") as error:
        read_image(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    path = huge_header_png(tmp_path / "big.png", side=12_000)  # below Pillow's own bomb limit, above ours
    with pytest.raises(ImageError, match="is 12000x12000: a side is at most 8192 pixels"):
        read_image(path)


def test_a_folder_run_counts_a_huge_header_and_goes_on_to_its_summary(tmp_path, checkpoint, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    picture(folder / "a.png")
    huge_header_png(folder / "b.png")
    (folder / "c.png").symlink_to(folder / "missing.png")  # a dangling link is counted, not skipped
    picture(folder / "d.png", 90)
    assert predict(folder, tmp_path / "out", checkpoint) == 1
    captured = capsys.readouterr()
    assert "done 2, failed 2" in captured.out and "Traceback" not in captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error")]
    assert len(errors) == 2 and "b.png" in errors[0] and "c.png" in errors[1]
    assert (tmp_path / "out" / "d_label.png").is_file()


@pytest.mark.parametrize("skip_bad", [False, True])
def test_a_folder_data_set_names_a_decompression_bomb_in_one_line(tmp_path, skip_bad):
    root = write_sample_dataset("folder", tmp_path / "mine", num_train=1, num_val=2, size=64)
    image = sorted((root / "images" / "val").iterdir())[0]
    huge_header_png(image.with_suffix(".png"))
    image.unlink()
    if skip_bad:
        dataset = FolderDataset(root, "val", skip_bad=True, progress=False)
        assert len(dataset) == 1 and len(dataset.skipped) == 1 and "too large" in dataset.skipped[0]
    else:
        with pytest.raises(DatasetError, match="too large to decode") as error:
            FolderDataset(root, "val", progress=False)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_a_broken_link_in_a_folder_data_set_is_named_and_counted(tmp_path, capsys, kind):
    root = write_sample_dataset("folder", tmp_path / "mine", num_train=1, num_val=2, size=64)
    image = sorted((root / "images" / "val").iterdir())[0]
    image.unlink()
    image.symlink_to(tmp_path / "gone.jpg" if kind == "dangling" else image)
    reason = f"a broken symlink (to {tmp_path / 'gone.jpg'}, which does not exist)" if kind == "dangling" else \
        "a symlink loop"
    code, err = one_line(capsys, "eval", VOC, "--checkpoint", tmp_path / "none.pth", "--data-root", root)
    assert code == 2 and err.endswith(f"error: cannot read image {image}: {reason}")  # it vanished, exit 0
    if kind == "dangling":  # with --skip-bad: left out, named, and counted
        checkpoint = save_checkpoint(isanet.ISANet(isanet.ISANetConfig.tiny()), tmp_path / "five.pth")
        assert main(["eval", VOC, "--checkpoint", str(checkpoint), "--data-root", str(root), "--scale", "64", "48",
                     "--skip-bad"]) == 0
        captured = capsys.readouterr()
        assert f"warning: skipping cannot read image {image}: {reason}" in captured.err
        assert "warning: skipped 1 of 2 val images" in captured.err and "on 1 images" in captured.out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs and /dev/zero")
def test_a_fifo_or_a_device_is_not_a_regular_file(tmp_path, checkpoint, capsys):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    unblock = threading.Timer(20, lambda: os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)))  # a reader fails,
    unblock.daemon = True  # not hangs
    unblock.start()
    html = ["--model", VOC, "--out", tmp_path / "p.html"]
    for argv, message in [
        (["attention", fifo, *html], f"cannot read image {fifo}: not a regular file (a FIFO)"),
        (["attention", "/dev/zero", *html], "cannot read image /dev/zero: not a regular file (a device)"),
        (["attention", picture(tmp_path / "a.png"), "--checkpoint", fifo, *html],
         f"checkpoint {fifo}: not a regular file (a FIFO)"),
        (["attention", tmp_path / "a.png", "--checkpoint", "/dev/zero", *html],
         "checkpoint /dev/zero: not a regular file (a device)"),
        (["predict", fifo, "--model", VOC, "--checkpoint", checkpoint, "--out", tmp_path / "out"],
         f"INPUT {fifo}: not a regular file (a FIFO)"),
    ]:
        code, err = one_line(capsys, *argv)
        assert code == 2 and message in err, err
    unblock.cancel()
    folder = tmp_path / "pictures"  # in a folder: counted as a failure, never waited on
    folder.mkdir()
    picture(folder / "a.png")
    os.mkfifo(folder / "b.png")
    assert predict(folder, tmp_path / "out", checkpoint) == 1
    captured = capsys.readouterr()
    assert "done 1, failed 1" in captured.out
    assert f"error: cannot read image {folder / 'b.png'}: not a regular file (a FIFO)" in captured.err


@pytest.mark.parametrize("damage", ["truncated", "bad checksum"])
def test_a_damaged_picture_is_one_line_without_the_decoders_own(tmp_path, capfd, damage):
    """libpng and OpenCV print to file descriptor 2 themselves; their gist goes into the kit's one line."""
    path = picture(tmp_path / "a.png", 90)
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        del data[len(data) // 2:]
    else:
        data[data.find(b"IDAT") + 20] ^= 0xFF
    path.write_bytes(bytes(data))
    code = main(["attention", str(path), "--model", VOC, "--out", str(tmp_path / "p.html")])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"isanet attention: error: cannot decode image {path}: not a readable image file")
    assert damage == "truncated" or "(IDAT: " in err[0]  # libpng's gist: the chunk and what is wrong with it


def test_a_damaged_video_is_one_line_without_ffmpegs_own(tmp_path, checkpoint, capfd):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "clip.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes())
    assert predict(tmp_path / "in", tmp_path / "out", checkpoint) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot open video {tmp_path / 'in' / 'clip.mp4'}: "
                                               "not a readable video file"), err


def test_bom_and_crlf_in_classes_txt_are_read_as_text(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_bytes("\ufeffbackground\r\ncat\r\n".encode())
    assert read_classes(path) == ("background", "cat")


# ---------------------------------------------------------------- predict's outputs

def test_inputs_differing_only_in_case_get_their_own_outputs(tmp_path, checkpoint, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    picture(folder / "a.jpg")
    picture(folder / "a.JPG", 200)
    assert predict(folder, tmp_path / "out", checkpoint) == 0
    assert "done 2, failed 0" in capsys.readouterr().out
    labels = sorted(path.name for path in (tmp_path / "out").glob("*_label.png"))
    assert labels == ["a_jpg_2_label.png", "a_jpg_label.png"]


def test_predict_never_writes_into_its_input_folder(tmp_path, checkpoint, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    picture(folder / "a.png")
    code = predict(folder, folder, checkpoint)
    assert code == 2 and "--out" in capsys.readouterr().err and sorted(p.name for p in folder.iterdir()) == ["a.png"]


def test_predict_leaves_a_users_file_and_its_own_outputs_alone(tmp_path, checkpoint, capsys):
    folder, out = tmp_path / "pictures", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    picture(folder / "a.png")
    picture(folder / "b.png", 90)
    mine = picture(out / "a_label.png", 7)  # the user's own file of that name
    before = sha(mine)
    assert predict(folder, out, checkpoint) == 1
    captured = capsys.readouterr()
    assert "done 1, failed 1" in captured.out and "was not written by isanet" in captured.err
    assert sha(mine) == before
    assert predict(out, tmp_path / "again", checkpoint) == 0  # the earlier run's outputs are not inputs
    assert "done 1, failed 0" in capsys.readouterr().out  # a_label.png (the user's) is the one input


# ---------------------------------------------------------------- the ledger

def test_the_kit_replaces_its_own_file_but_not_one_the_user_changed(tmp_path):
    path = write_text_atomic("{}", tmp_path / "r.json")
    assert written_by_kit(path) and check_output(path, "--out", suffixes=(".json",)) == path.resolve()
    path.write_text('{"edited": true}')
    assert not written_by_kit(path)
    with pytest.raises(ValueError, match="was not written by isanet"):
        check_output(path, "--out", suffixes=(".json",))


# ---------------------------------------------------------------- the bench's bounds

def test_bench_rows_name_the_precision_that_ran(tmp_path):
    model = isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=21))
    settings = get_entry(VOC).test.replace(mode="whole", crop_size=None, stride=None)
    with pytest.warns(UserWarning, match="fp16 on cpu"):
        result = bench_model(model, "tiny", (32, 32), [Variant("fp32"), Variant("fp16")], settings,
                             repeats=1, warmup=0)
    assert [row.label for row in result.rows] == ["pytorch fp32"]  # fp16 ran as fp32: one row, named so


def test_bench_model_refuses_a_size_the_memory_cap_cannot_hold_before_building(capsys):
    assert main(["bench", "model", VOC, "--size", "8192", "8192"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--size 8192 8192" in err[0] and "--memory-cap-gb 8" in err[0]


def test_a_fallback_warning_is_one_line(capsys, checkpoint, tmp_path):
    picture(tmp_path / "a.png")
    with warnings.catch_warnings():  # printed as outside pytest, which records warnings instead
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
            warnings.formatwarning(message, category, filename, lineno, line))  # what Python prints by default
        main(["predict", str(tmp_path / "a.png"), "--model", VOC, "--checkpoint", str(checkpoint), "--out",
              str(tmp_path / "out"), "--precision", "fp16", *QUICK])
    lines = [line for line in capsys.readouterr().err.splitlines() if "fp16" in line]
    assert lines and all(line.startswith("warning: --precision fp16 on cpu") for line in lines)


# ---------------------------------------------------------------- precise messages

def one_line(capsys, *argv) -> tuple[int, str]:
    code = main([str(arg) for arg in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return code, err[0]


def test_random_bytes_and_a_folder_as_checkpoint_say_what_they_are(tmp_path, capsys):
    noise = tmp_path / "noise.pth"
    noise.write_bytes(np.random.default_rng(0).integers(1, 120, 4096).astype(np.uint8).tobytes())
    code, err = one_line(capsys, "export", "--checkpoint", noise, "--out", tmp_path / "m.onnx", "--no-check")
    assert code == 2 and "not a pickle/zip checkpoint" in err and "run code" not in err
    (tmp_path / "weights").mkdir()
    code, err = one_line(capsys, "export", "--checkpoint", tmp_path / "weights", "--out", tmp_path / "m.onnx",
                         "--no-check")
    assert code == 2 and "is a folder, not a checkpoint file" in err and "Errno" not in err


def test_hub_names_the_argument_of_the_wrong_type():
    import hubconf

    with pytest.raises(TypeError, match=r"name= must be a string .*got int 123"):
        hubconf.isanet(name=123)


def test_pixel_outside_the_picture_is_refused_with_the_range(tmp_path, capsys):
    picture(tmp_path / "a.png")
    code, err = one_line(capsys, "attention", tmp_path / "a.png", "--model", VOC, "--width", 64, "--pixel", 1000, 5,
                         "--out", tmp_path / "page.html")
    assert code == 2 and "--pixel 1000 5: outside the 48x64 resized picture; expected ROW 0 to 47" in err
    assert not (tmp_path / "page.html").exists()


def test_a_set_with_no_labelled_pixel_says_so_instead_of_nan(tmp_path, checkpoint, capsys):
    top = write_sample_dataset("voc", tmp_path, num_train=1, num_val=1, size=64)
    for mask in (top / "SegmentationClass").glob("*.png"):
        Image.fromarray(np.full(np.array(Image.open(mask)).shape, 255, np.uint8)).save(mask)
    code = main(["eval", VOC, "--checkpoint", str(checkpoint), "--data-root", str(top.parent), "--scale", "64", "48"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "no labelled pixel" in err[-1] and "nan" not in err[-1]


def test_the_site_is_never_written_into_the_notebooks(capsys, tmp_path):
    from isanet.notebook import site
    from isanet.notebook.session import repo_root

    assert site.main(["--out", str(repo_root() / "notebooks" / "site")]) == 2  # a usage error, as the commands'
    assert "lies inside the input folder notebooks" in capsys.readouterr().err
    assert not (repo_root() / "notebooks" / "site").exists()
    assert site.main(["--out", str(tmp_path / "site"), "99_nope"]) == 2
    assert "site: error: no notebook 99_nope in " in capsys.readouterr().err and not (tmp_path / "site").exists()
    with pytest.raises(SystemExit) as exit_:
        site.main(["--out", str(tmp_path / "site"), "--timeout", "-1"])
    assert exit_.value.code == 2 and "argument --timeout: -1 is out of range: expected 1 to" in capsys.readouterr().err
