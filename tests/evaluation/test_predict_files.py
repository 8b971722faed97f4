"""``isanet predict`` on files: the overlay arithmetic and legend, and the command on a tiny image, a folder
with a corrupt file and a short generated video. The checkpoint is a small R-18 with seeded RANDOM weights
(its outputs mean nothing; the tests check that the outputs are the model's prediction, drawn as stated)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import isanet
from isanet.cli import main
from isanet.data.datasets import VOCDataset
from isanet.data.sample_checkpoint import random_state_dict
from isanet.evaluation.inference import image_logits, ms_flip_probabilities
from isanet.evaluation.overlay import blend, classes_present, colorize, draw_legend
from isanet.io.checkpoint import load_model
from isanet.io.outputs import LEDGER
from isanet.models.zoo import get_entry

VOC = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"
QUICK = ["--scale", "64", "64", "--no-progress"]  # a small test resize keeps the tests fast on a CPU


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    model = isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=21))
    model.load_state_dict(random_state_dict(model, seed=2))
    path = tmp_path_factory.mktemp("ckpt") / "tiny_random.pth"
    isanet.save_checkpoint(model, path, meta={"note": "RANDOM WEIGHTS for tests"})
    return path


def _picture(height: int, width: int, shift: int = 0) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([(xs * 4 + shift) % 256, ys * 5 % 256, (xs + ys) * 3 % 256], axis=-1).astype(np.uint8)
    image[height // 4:height // 2, width // 3:width // 2] = (230, 30, 30)
    return image


def _save(image: np.ndarray, path: Path) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def _read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_blend_and_legend_arithmetic() -> None:
    image = np.full((4, 6, 3), 100, dtype=np.uint8)
    label = np.zeros((4, 6), dtype=np.uint8)
    label[:, 3:] = 2
    palette = [(0, 0, 0), (10, 20, 30), (200, 100, 50)]
    assert np.array_equal(blend(image, label, palette, 0.0), image)
    assert np.array_equal(blend(image, label, palette, 1.0), colorize(label, palette))
    assert blend(image, label, palette, 0.5)[0, 5].tolist() == [150, 100, 75]
    assert blend(image, label, palette, 0.25)[0, 0].tolist() == [75, 75, 75]
    with pytest.raises(ValueError, match="opacity"):
        blend(image, label, palette, 1.5)
    assert classes_present(label, 3) == [0, 2]

    picture = np.full((40, 200, 3), 128, dtype=np.uint8)
    classes = ["zero", "one", "two"]
    below = draw_legend(picture, [0, 2], classes, palette)
    assert below.shape[1] == 200 and below.shape[0] > 40 and np.array_equal(below[:40], picture)
    strip = below[40:].reshape(-1, 3)
    has = lambda colour: bool((strip == colour).all(axis=1).any())
    assert has((200, 100, 50)) and not has((10, 20, 30)), "the legend lists the classes present only"
    inside = draw_legend(picture, [1], classes, palette, inside=True)
    assert inside.shape == picture.shape and (inside.reshape(-1, 3) == (10, 20, 30)).all(axis=1).any()
    small = picture[:20, :40]
    assert np.array_equal(draw_legend(small, [0, 1, 2], classes, palette, inside=True), small), "box would hide it"


def test_predict_an_image_writes_the_models_prediction(tmp_path, checkpoint, capsys, one_thread) -> None:
    image = _picture(30, 44)
    _save(image, tmp_path / "mine.png")
    assert main(["predict", str(tmp_path / "mine.png"), "--model", VOC, "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "out"), "--opacity", "0.6", *QUICK]) == 0
    out = capsys.readouterr().out
    assert "RANDOM WEIGHTS" in out and "done 1, failed 0" in out

    label = cv2.imread(str(tmp_path / "out" / "mine_label.png"), cv2.IMREAD_UNCHANGED)
    model = load_model(checkpoint)
    settings = get_entry(VOC).test
    expected = image_logits(model.eval(), image, (64, 64), settings.mean, settings.std).argmax(0).numpy()
    assert label.shape == (30, 44) and label.dtype == np.uint8
    assert np.array_equal(label, expected)
    overlay = _read(tmp_path / "out" / "mine_overlay.png")
    assert overlay.shape[1] == 44 and overlay.shape[0] > 30, "image on top, legend strip below"
    assert np.array_equal(overlay[:30], blend(image, expected, VOCDataset.PALETTE, 0.6))


def test_ms_flip_is_the_tta_prediction(tmp_path, checkpoint, capsys, one_thread) -> None:
    image = _picture(24, 36)
    _save(image, tmp_path / "mine.png")
    assert main(["predict", str(tmp_path / "mine.png"), "--model", VOC, "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "out"), "--ms-flip", "--no-progress"]) == 0
    settings = get_entry(VOC).test
    expected = ms_flip_probabilities(load_model(checkpoint).eval(), image, settings.mean, settings.std).argmax(0)
    label = cv2.imread(str(tmp_path / "out" / "mine_label.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(label, expected.numpy())
    assert main(["predict", str(tmp_path / "mine.png"), "--model", VOC, "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "out"), "--mode", "slide"]) == 2
    assert "--mode slide needs a crop size" in capsys.readouterr().err


def test_folder_with_a_corrupt_file_goes_on_and_fails_at_the_end(tmp_path, checkpoint, capsys, one_thread) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    _save(_picture(24, 32), folder / "a.png")
    _save(_picture(20, 28, shift=9), folder / "c.jpg")
    (folder / "b.png").write_bytes(b"this is not a picture")
    (folder / "notes.txt").write_text("not an input")
    assert main(["predict", str(folder), "--model", VOC, "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "out"), *QUICK]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "b.png" in errors[0] and "not an image file" in errors[0]
    assert "done 2, failed 1" in captured.out
    written = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != LEDGER)
    assert written == ["a_label.png", "a_overlay.png", "c_label.png", "c_overlay.png"]


def test_video_gives_an_overlay_video(tmp_path, checkpoint, capsys, one_thread) -> None:
    frames = [_picture(48, 64, shift=12 * i) for i in range(4)]
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 7.0, (64, 48))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    assert main(["predict", str(tmp_path / "clip.mp4"), "--model", VOC, "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "out"), *QUICK]) == 0
    assert "done 1, failed 0" in capsys.readouterr().out
    reader = cv2.VideoCapture(str(tmp_path / "out" / "clip_overlay.mp4"))
    assert reader.isOpened()
    assert int(reader.get(cv2.CAP_PROP_FRAME_COUNT)) == 4 and reader.get(cv2.CAP_PROP_FPS) == pytest.approx(7.0)
    ok, first = reader.read()
    reader.release()
    assert ok and first.shape == (48, 64, 3)
    # a 64 x 48 frame is too small for a legend box: the frame is the blend of the decoded input frame (both
    # lossy: compare loosely)
    source = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    decoded = cv2.cvtColor(source.read()[1], cv2.COLOR_BGR2RGB)
    source.release()
    settings = get_entry(VOC).test
    label = image_logits(load_model(checkpoint).eval(), decoded, (64, 64), settings.mean, settings.std).argmax(0)
    expected = blend(decoded, label.numpy().astype(np.uint8), VOCDataset.PALETTE, 0.5)
    got = cv2.cvtColor(first, cv2.COLOR_BGR2RGB).astype(int)
    error = np.abs(got - expected.astype(int)).mean()
    assert error < 12 and np.abs(got - decoded.astype(int)).mean() > 2 * error


def test_bad_inputs_get_one_line(tmp_path, checkpoint, capsys) -> None:
    base = ["--model", VOC, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]
    assert main(["predict", str(tmp_path / "nothing.png"), *base]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing.png" in err and "does not exist" in err
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), *base]) == 2
    assert "holds no images or videos" in capsys.readouterr().err
    _save(_picture(8, 8), tmp_path / "x.png")
    with pytest.raises(SystemExit) as exit_:  # refused by its argparse type, as every number option
        main(["predict", str(tmp_path / "x.png"), *base, "--opacity", "2"])
    assert exit_.value.code == 2
    assert "argument --opacity: 2 is out of range: expected a finite number at least 0 and at most 1" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "nothing written for bad arguments"


def test_predict_bf16_is_the_bf16_prediction(tmp_path, checkpoint, monkeypatch, one_thread) -> None:
    """--precision bf16 (as on a CPU with AVX-512 BF16) writes the argmax of image_logits in bf16."""
    from isanet import runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    image = _picture(30, 44)
    _save(image, tmp_path / "mine.png")
    assert main(["predict", str(tmp_path / "mine.png"), "--model", VOC, "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "out"), "--precision", "bf16", *QUICK]) == 0
    label = cv2.imread(str(tmp_path / "out" / "mine_label.png"), cv2.IMREAD_UNCHANGED)
    settings = get_entry(VOC).test
    model = load_model(checkpoint).eval()
    bf16 = image_logits(model, image, (64, 64), settings.mean, settings.std, precision="bf16").argmax(0).numpy()
    fp32 = image_logits(model, image, (64, 64), settings.mean, settings.std).argmax(0).numpy()
    assert np.array_equal(label, bf16)
    assert (label == fp32).mean() > 0.9  # random weights: near-ties may flip
