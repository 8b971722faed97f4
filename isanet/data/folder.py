"""Your own data: a segmentation data set in a plain folder layout, checked before any of it is used.

The layout (what ``isanet sample-data folder`` writes, and what ``--dataset folder`` reads)::

    ROOT/classes.txt                 one class name per line, in id order (line 1 is id 0)
    ROOT/palette.txt                 optional: one "r g b" line per class (default: Pascal VOC's colour map)
    ROOT/images/{train,val}/NAME.jpg (or .jpeg .png .bmp .tif .tiff .webp .ppm .pgm; sub-folders allowed)
    ROOT/masks/{train,val}/NAME.png  single-channel 8-bit class ids (grayscale or palette PNG), 255 = ignore

Bad data is named, never silently wrong: listing a split checks every pair once, at construction, and stops at
the first problem with a one-line :class:`DatasetError` naming the file (an image without a mask, a mask whose
size differs from its image, a multi-channel mask, a class id not in ``classes.txt`` other than 255, a file that
is not an image, a broken or looping symlink, a FIFO). With ``skip_bad`` the bad pairs are left out instead,
each with a warning line, and a count at the end. The check reads image *headers* only (size and EXIF
orientation, no pixel decoding) but decodes every mask, because ids can only be checked in the pixels; masks are
small single-channel PNGs, so this costs a fraction of one epoch's image decoding, and a progress bar shows it on
large folders. A file whose header is fine but whose pixels are corrupt is still named when it is first read.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from isanet.data.datasets import IGNORE_INDEX, DatasetError, SegDataset, read_label
from isanet.io.files import not_a_regular_file
from isanet.io.image import IMAGE_SUFFIXES, ImageError, check_image_size, image_size

LAYOUT = "ROOT/images/{train,val}/, ROOT/masks/{train,val}/ and ROOT/classes.txt"


def voc_colormap() -> np.ndarray:
    """The 256-entry Pascal VOC label palette (its bit-interleaving rule; entry 255 is the void colour); the
    default palette of a folder data set, as most label-drawing tools use it."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, red, green, blue = index, 0, 0, 0
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        colours[index] = red, green, blue
    return colours


def is_folder_layout(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds this layout (``classes.txt``, ``images/``, ``masks/``): lets the commands pick the
    folder reader without ``--dataset folder``."""
    root = Path(root)
    return (root / "classes.txt").is_file() and (root / "images").is_dir() and (root / "masks").is_dir()


def dataset_kind(requested: str | None, root: str | os.PathLike, default: str) -> str:
    """The reader a command uses: ``requested`` when given (``--dataset``), else "folder" when ``root`` holds this
    layout, else ``default`` (the zoo entry's data set, whose layout no folder data set has)."""
    if requested:
        return requested
    return "folder" if is_folder_layout(root) else default


def read_lines(path: Path) -> list[str]:
    """The lines of a text file as an editor shows them: a UTF-8 byte-order mark dropped (Windows Notepad writes
    one), CRLF or CR line ends, trailing empty lines left out."""
    return path.read_text(encoding="utf-8-sig").rstrip("\r\n").splitlines()


def read_classes(path: Path) -> tuple[str, ...]:
    """The class names of ``classes.txt``: one per line, no blanks in between, no repeats, at most 255."""
    if not path.is_file():
        raise DatasetError(f"missing {path}: expected one class name per line, in id order")
    lines = read_lines(path)
    names = tuple(line.strip() for line in lines)
    for number, name in enumerate(names, 1):
        if not name:
            raise DatasetError(f"{path} line {number} is empty: expected one class name per line, in id order")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DatasetError(f"{path} names {repeated} more than once: each class needs its own name")
    if len(names) > IGNORE_INDEX:
        raise DatasetError(f"{path} lists {len(names)} classes: at most {IGNORE_INDEX} fit in 8-bit masks "
                           f"({IGNORE_INDEX} = ignore)")
    return names


def read_palette(path: Path, num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """The colours of ``palette.txt`` (one ``r g b`` line per class), else the first ``num_classes`` VOC colours."""
    if not path.is_file():
        return tuple(tuple(int(v) for v in colour) for colour in voc_colormap()[:num_classes])
    lines = read_lines(path)
    if len(lines) != num_classes:
        raise DatasetError(f"{path} has {len(lines)} lines but classes.txt lists {num_classes} classes: expected "
                           "one 'r g b' line per class")
    palette = []
    for number, line in enumerate(lines, 1):
        parts = line.replace(",", " ").split()
        if len(parts) != 3 or not all(part.isdigit() and int(part) <= 255 for part in parts):
            raise DatasetError(f"{path} line {number} is {line!r}: expected three numbers 0..255 ('r g b')")
        palette.append(tuple(int(part) for part in parts))
    return tuple(palette)


class FolderDataset(SegDataset):
    """A data set of your own in the folder layout of this module's docstring; classes from ``classes.txt``.

    ``skip_bad`` leaves bad image/mask pairs out (a warning line each, the count at the end, the messages in
    :attr:`skipped`) instead of stopping at the first; ``progress`` shows the check's progress bar.
    """

    NAME = "folder"
    SPLITS = {"train": "train", "val": "val"}

    def __init__(self, root: str | os.PathLike, split: str = "val", skip_bad: bool = False, progress: bool = True):
        self.skip_bad, self.progress, self.skipped = skip_bad, progress, []
        top = self.find_root(Path(root))
        self.CLASSES = read_classes(top / "classes.txt")
        self.PALETTE = read_palette(top / "palette.txt", len(self.CLASSES))
        self.VALUE_HINT = f" of {top / 'classes.txt'} (ids 0..{len(self.CLASSES) - 1})"
        super().__init__(top, split)

    @classmethod
    def find_root(cls, root: Path) -> Path:
        if is_folder_layout(root):
            return root
        state = ("does not exist" if not root.exists() else "is not a folder" if not root.is_dir() else
                 "has no " + ", ".join(name for name in ("images/", "masks/", "classes.txt")
                                       if not (root / name.rstrip("/")).exists()))
        raise DatasetError(f"{root} is not a folder data set: it {state}. Expected {LAYOUT}")

    def list_samples(self, split: str) -> list[tuple[Path, Path]]:
        """Every image of ``split`` with its mask, sorted by path; each pair checked (see the module docstring)."""
        image_dir, mask_dir = self.root / "images" / split, self.root / "masks" / split
        # every entry but a folder: a broken link or a FIFO named like a picture is checked below, so it is named
        images = [path for path in self.scan(image_dir, "") if path.suffix.lower() in IMAGE_SUFFIXES
                  and not path.is_dir()]
        masks: dict[Path, Path] = {}
        for image in images:
            mask = mask_dir / image.relative_to(image_dir).with_suffix(".png")
            if mask in masks:
                raise DatasetError(f"images {masks[mask]} and {image} would share the mask {mask}: "
                                   "give each image its own name")
            masks[mask] = image
        samples = []
        bar = tqdm(masks.items(), desc=f"checking {split} masks", unit="mask", leave=False,
                   disable=not self.progress or len(masks) < 100)
        for mask, image in bar:
            problem = self.problem(image, mask)
            if problem is None:
                samples.append((image, mask))
            elif not self.skip_bad:
                raise DatasetError(problem)
            else:
                self.skipped.append(problem)
                tqdm.write(f"warning: skipping {problem}", file=sys.stderr)
        if self.skipped:
            tqdm.write(f"warning: skipped {len(self.skipped)} of {len(masks)} {split} images of {self.root} "
                       "(--skip-bad)", file=sys.stderr)
        return samples

    def problem(self, image: Path, mask: Path) -> str | None:
        """What is wrong with the pair ``image``/``mask`` (one line naming the file), or None."""
        if not os.path.lexists(mask):
            return f"image {image} has no mask: expected {mask}"
        unreadable = not_a_regular_file(mask)
        if unreadable:
            return f"cannot read mask {mask}: {unreadable}"
        try:
            width, height = image_size(image)
            check_image_size(image, (width, height))
        except ImageError as error:
            return str(error)
        try:
            with Image.open(mask) as handle:
                bands, mode, mask_size = len(handle.getbands()), handle.mode, handle.size
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            return f"cannot read mask {mask}: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        if bands != 1:
            return (f"mask {mask} has {bands} channels ({mode}): expected a single-channel PNG of class ids "
                    "(grayscale or palette), not a colour picture")
        if mask_size != (width, height):
            return (f"mask {mask} is {mask_size[0]}x{mask_size[1]} but its image {image} is {width}x{height}: "
                    "they must match")
        try:
            label = read_label(mask)
        except DatasetError as error:
            return str(error)
        outside = (label >= self.num_classes) & (label != IGNORE_INDEX)
        if outside.any():
            return (f"mask {mask} has class ids {np.unique(label[outside]).tolist()} but {self.root / 'classes.txt'} "
                    f"lists {self.num_classes} classes (ids 0..{self.num_classes - 1}, {IGNORE_INDEX} = ignore)")
        return None
