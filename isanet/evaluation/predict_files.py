"""Predict files on disk: an image, a folder of images, or a video, with the zoo entry's own test pipeline.

This is what ``isanet predict`` runs (mmseg's ``image_demo.py`` / ``video_demo.py``, for whole folders too).
Each image gives ``STEM_overlay.png`` (the prediction blended over the image, legend of the classes present)
and ``STEM_label.png`` (class ids, one channel); a video gives ``STEM_overlay.mp4``. A file that cannot be read
is reported in one line and the others go on; :class:`Summary` says what was done and what failed.

The pieces are kept apart so a new option touches one place: :class:`PredictOptions` holds the choices, the
:class:`PredictionWriter` turns one picture into class ids (through the one
:class:`~isanet.evaluation.inference.Predictor`) and draws them, and :func:`predict_inputs` walks the inputs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from isanet.data.datasets import DatasetError, read_image
from isanet.data.registry import dataset_class
from isanet.evaluation.inference import DEFAULT_MEMORY_CAP, MemoryCap, Predictor
from isanet.evaluation.overlay import overlay_picture
from isanet.io.atomic import atomic_path
from isanet.io.chatter import caught_output, gist
from isanet.io.files import not_a_regular_file
from isanet.io.image import IMAGE_SUFFIXES
from isanet.io.outputs import check_replaceable, written_by_kit
from isanet.models.zoo import ZooEntry

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class PredictOptions:
    """How to predict and draw: ``mode`` overrides the entry's whole/slide test mode, ``ms_flip`` switches on
    mmseg's multi-scale + flip TTA, ``scale`` overrides the test resize (quick runs on small pictures),
    ``opacity`` is the colours' share in the overlay, ``precision`` the forward passes' (resolved once, by the
    :class:`~isanet.evaluation.inference.Predictor`), ``optimize`` whether they run compiled, ``memory_cap``
    the bound of every picture's estimated peak. The test settings are checked when the writer is made."""

    mode: str | None = None
    scale: tuple[int, int] | None = None
    ms_flip: bool = False
    opacity: float = 0.5
    device: str = "cpu"
    progress: bool = True
    precision: str = "fp32"
    optimize: bool = False
    memory_cap: MemoryCap = DEFAULT_MEMORY_CAP

    def __post_init__(self) -> None:
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError(f"opacity must be between 0 and 1, got {self.opacity}")


@dataclass
class PredictionWriter:
    """A :class:`~isanet.evaluation.inference.Predictor` with the class names/palette to draw with:
    :meth:`labels` of an ``H x W x 3`` RGB image, and its :meth:`overlay`."""

    predictor: Predictor
    classes: Sequence[str]
    palette: Sequence[Sequence[int]]
    options: PredictOptions = field(default_factory=PredictOptions)

    @classmethod
    def from_entry(cls, model: nn.Module, entry: ZooEntry, options: PredictOptions,
                   dataset_meta: dict | None = None, precision_option: str = "precision") -> PredictionWriter:
        """The entry's test settings with the options' mode and scale (a scale whose pictures would pass the memory
        cap refused here); classes and palette from the checkpoint's
        ``dataset_meta`` when they match the model's classes, else the entry's data set (and numbered names for
        any extra classes). The options' precision is resolved by the Predictor, once (``precision_option``
        names it in the fallback warning)."""
        if options.mode == "slide" and entry.test.crop_size is None:  # the message names the option
            raise ValueError(f"--mode slide needs a crop size and stride, and {entry.name} tests in whole mode "
                             "without them: use one of the zoo's 769x769 (slide) entries")
        settings = entry.test.override(options.mode, options.scale)
        num_classes = int(getattr(model, "num_classes", 0) or 0)
        meta = dataset_meta or {}
        if meta.get("classes") and meta.get("palette") and len(meta["classes"]) == num_classes:
            classes, palette = list(meta["classes"]), [tuple(c) for c in meta["palette"]]
        else:
            reader = dataset_class(entry.dataset)
            classes, palette = list(reader.CLASSES), list(reader.PALETTE)
        rng = np.random.default_rng(0)
        while len(classes) < num_classes:
            classes.append(f"class {len(classes)}")
            palette.append(tuple(int(v) for v in rng.integers(0, 256, 3)))
        predictor = Predictor(model.eval(), settings, options.precision, options.device, options.optimize,
                              precision_option=precision_option, memory_cap=options.memory_cap)
        if not options.ms_flip:  # multi-scale + flip has no test-scale resize: each picture is estimated alone
            predictor.check_test_scale()
        return cls(predictor, classes, palette, options)

    def labels(self, image: np.ndarray) -> np.ndarray:
        """``H x W`` uint8 class ids of an original ``H x W x 3`` uint8 RGB image, at its own size."""
        return self.predictor.class_ids(image, self.options.ms_flip).to(torch.uint8).numpy()

    def overlay(self, image: np.ndarray, label: np.ndarray, legend_inside: bool = False) -> np.ndarray:
        return overlay_picture(image, label, self.classes, self.palette, self.options.opacity, legend_inside)


@dataclass
class Summary:
    """What a run did: output files written, and ``(input, one-line reason)`` for each input that failed."""

    written: list[Path] = field(default_factory=list)
    done: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def line(self) -> str:
        return f"done {len(self.done)}, failed {len(self.failed)}"


def _write_png(picture: np.ndarray, path: Path) -> Path:
    """PNG written atomically (RGB pictures flipped to OpenCV's BGR; one-channel class ids as they are)."""
    data = picture if picture.ndim == 2 else cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", data)
    if not ok:
        raise OSError(f"could not encode {path.name} as PNG")
    check_replaceable(path, "output")  # a user's own a_label.png stays
    with atomic_path(path) as temporary:
        temporary.write_bytes(encoded.tobytes())
    return path


def predict_image_file(writer: PredictionWriter, path: Path, out_dir: Path, stem: str | None = None) -> list[Path]:
    """``STEM_overlay.png`` and ``STEM_label.png`` for one image file."""
    image = read_image(path)
    label = writer.labels(image)
    stem = stem or path.stem
    return [_write_png(writer.overlay(image, label), out_dir / f"{stem}_overlay.png"),
            _write_png(label, out_dir / f"{stem}_label.png")]


def predict_video_file(writer: PredictionWriter, path: Path, out_dir: Path, stem: str | None = None) -> list[Path]:
    """``STEM_overlay.mp4`` (mp4v, the input's frame rate and size): every frame predicted and blended, with
    the legend of its classes in the top-left corner."""
    unreadable = not_a_regular_file(path)  # a FIFO would block the capture
    if unreadable:
        raise DatasetError(f"cannot open video {path}: {unreadable}")
    with caught_output() as printed:  # FFmpeg's and OpenCV's lines: the gist goes into the message
        reader = cv2.VideoCapture(str(path))
    if not reader.isOpened():
        detail = gist(printed)
        raise DatasetError(f"cannot open video {path}: not a readable video file" + (f" ({detail})" if detail else ""))
    target = check_replaceable(out_dir / f"{stem or path.stem}_overlay.mp4", "output")
    fps = reader.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(reader.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    video = None
    frames = 0
    try:
        with atomic_path(target, suffix=".mp4") as temporary:
            bar = tqdm(total=total, desc=path.name, unit="frame", disable=not writer.options.progress, leave=False)
            while True:
                with caught_output():  # a damaged frame's decoder lines: the frames read are what count
                    ok, frame = reader.read()
                if not ok:
                    break
                image = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                if video is None:
                    height, width = image.shape[:2]
                    video = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                    if not video.isOpened():
                        raise OSError(f"cannot write video {target} (OpenCV has no mp4v encoder?)")
                picture = writer.overlay(image, writer.labels(image), legend_inside=True)
                video.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
                frames += 1
                bar.update(1)
            bar.close()
            if video is not None:
                video.release()
                video = None
            if frames == 0:
                raise DatasetError(f"cannot decode video {path}: no frame could be read")
    finally:
        reader.release()
        if video is not None:
            video.release()
    return [target]


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def list_inputs(source: str | os.PathLike) -> list[Path]:
    """The files an INPUT names: itself (an image or a video), or the images and videos in a folder (sorted,
    not recursive). Other files in a folder are left out, and so are the kit's own outputs (an earlier run's
    ``STEM_overlay.png``, by its ledger); a broken or looping symlink or a FIFO is kept, so that it fails and is
    counted. A missing INPUT, or one that is not a regular file, is an error."""
    source = Path(source)
    if source.is_dir():
        found = sorted(p for p in source.iterdir()
                       if not p.is_dir() and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES
                       and not written_by_kit(p))
        if not found:
            raise FileNotFoundError(f"INPUT folder {source} holds no images or videos "
                                    f"({', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)})")
        return found
    if not os.path.lexists(source):
        raise FileNotFoundError(f"INPUT {source} does not exist (expected an image, a folder of images or a video)")
    unreadable = not_a_regular_file(source)
    if unreadable:
        raise ValueError(f"INPUT {source}: {unreadable} (expected an image, a folder of images or a video)")
    return [source]


def _stems(paths: Sequence[Path]) -> list[str]:
    """Output stems, unique per input even on a case-insensitive disk: the file's stem, ``stem_ext`` when two
    inputs share a stem (a.jpg and a.png), and ``stem_ext_N`` when that too is shared (a.jpg and a.JPG)."""
    counts: dict[str, int] = {}
    for path in paths:
        counts[path.stem.lower()] = counts.get(path.stem.lower(), 0) + 1
    stems, used = [], set()
    for path in paths:
        stem = path.stem if counts[path.stem.lower()] == 1 else f"{path.stem}_{path.suffix.lstrip('.').lower()}"
        candidate, number = stem, 1
        while candidate.lower() in used:
            number += 1
            candidate = f"{stem}_{number}"
        used.add(candidate.lower())
        stems.append(candidate)
    return stems


def predict_inputs(writer: PredictionWriter, source: str | os.PathLike, out_dir: str | os.PathLike,
                   report: Callable[[str], None] | None = None) -> Summary:
    """Predict every input ``source`` names into ``out_dir``. A failing file is reported (``report``, default
    stderr) as ``error: PATH: reason`` and skipped; the others go on."""
    report = report or (lambda text: tqdm.write(text, file=sys.stderr))  # keeps a progress bar intact
    inputs = list_inputs(source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = Summary()
    several = len(inputs) > 1
    bar = tqdm(list(zip(inputs, _stems(inputs))), desc="predict", unit="file",
               disable=not (writer.options.progress and several))
    for path, stem in bar:
        try:
            run = predict_video_file if is_video(path) else predict_image_file
            summary.written += run(writer, path, out_dir, stem)
            summary.done.append(path)
        except (DatasetError, OSError, ValueError, RuntimeError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            summary.failed.append((path, reason))
            report(f"error: {reason}" if str(path) in reason else f"error: {path}: {reason}")
    return summary
