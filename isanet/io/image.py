"""The one image reader: the header first, its size checked against the stated bounds, then the pixels.

A 380 KB PNG can claim 20000 x 20000 pixels and decode to gigabytes, and a header claiming 100000 x 100000
makes OpenCV raise (``cv2.error``) and Pillow raise ``DecompressionBombError``, neither of which is an error a
caller expects from a bad file. So every picture the kit reads (``isanet predict``, ``isanet attention``, the
folder data set's check, the published data set readers, the notebooks) goes through :func:`read_image`:

1. :func:`image_size` reads the header with Pillow, without decoding pixels (a JPEG's EXIF rotation applied to
   the size, as OpenCV applies it to the pixels);
2. the size is checked against :data:`isanet.limits.MAX_IMAGE_SIDE` and the decoded bytes against
   :data:`isanet.limits.MAX_DECODED_BYTES`;
3. only then the pixels are decoded the way mmcv's ``LoadImageFromFile`` does (OpenCV, colour flag, which
   honours EXIF orientation), turned into RGB.

Every failure is one :class:`ImageError` line naming the file (a ``ValueError``, so a folder run counts it and
goes on).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from isanet.io.chatter import caught_output, gist
from isanet.io.files import not_a_regular_file
from isanet.limits import MAX_DECODED_BYTES, MAX_IMAGE_SIDE

EXIF_ORIENTATION = 0x0112
TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF rotations by 90 degrees: OpenCV decodes these with width/height swapped
#: Bytes per decoded pixel: the RGB result and OpenCV's BGR buffer it is made from.
DECODE_BYTES_PER_PIXEL = 6
#: The image files the kit looks for in a folder (``isanet predict DIR``, the folder data set): the formats
#: both halves of :func:`read_image` handle, Pillow reading the header and OpenCV's wheels decoding the pixels.
#: One tuple for every folder scan, so a picture ``isanet predict`` reads is never skipped by the data set.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageError(ValueError):
    """A picture that cannot be read (missing, not an image, too large, corrupt), with the file and why."""


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` of the image as OpenCV will decode it, from its header alone (a JPEG's EXIF rotation
    included; Pillow reads a PNG's EXIF only after its pixels, so PNGs are taken as stored)."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"cannot read image {path}: is a folder, not an image file")
    problem = not_a_regular_file(path)  # a FIFO would block the read, a device never end
    if problem:
        raise ImageError(f"cannot read image {path}: {problem}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own bound decides below
            with Image.open(path) as handle:
                width, height = handle.size
                orientation = handle.getexif().get(EXIF_ORIENTATION, 1) if handle.format == "JPEG" else 1
    except UnidentifiedImageError:
        raise ImageError(f"cannot read image {path}: not an image file (no known image header)") from None
    except Image.DecompressionBombError as error:
        raise ImageError(f"image {path} is too large to decode ({_reason(error)}); the limit is "
                         f"{MAX_IMAGE_SIDE} pixels a side (isanet.limits.MAX_IMAGE_SIDE)") from None
    except (OSError, ValueError, SyntaxError) as error:  # SyntaxError: Pillow's word for a malformed header
        raise ImageError(f"cannot read image {path}: {_reason(error)}") from None
    return (height, width) if orientation in TRANSPOSED_ORIENTATIONS else (width, height)


def check_image_size(path: str | os.PathLike, size: tuple[int, int]) -> None:
    """Refuse a ``(width, height)`` beyond :data:`MAX_IMAGE_SIDE` or :data:`MAX_DECODED_BYTES`, naming ``path``."""
    width, height = size
    if max(width, height) > MAX_IMAGE_SIDE:
        raise ImageError(f"image {path} is {width}x{height}: a side is at most {MAX_IMAGE_SIDE} pixels "
                         "(isanet.limits.MAX_IMAGE_SIDE); resize it first")
    needed = width * height * DECODE_BYTES_PER_PIXEL
    if needed > MAX_DECODED_BYTES:
        raise ImageError(f"image {path} is {width}x{height}: decoding it needs {needed / 2**30:.1f} GiB, more "
                         f"than the cap of {MAX_DECODED_BYTES / 2**30:.1f} GiB (isanet.limits.MAX_DECODED_BYTES)")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """``H x W x 3`` uint8 RGB, decoded like mmcv's ``LoadImageFromFile`` (cv2, colour flag) and flipped to RGB,
    after the header's size passed :func:`check_image_size`."""
    path = Path(path)
    check_image_size(path, image_size(path))
    try:
        data = np.fromfile(path, dtype=np.uint8)
        with caught_output() as printed:  # libpng's and OpenCV's lines: the gist goes into the message
            image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except (OSError, cv2.error) as error:
        raise ImageError(f"cannot read image {path}: {_reason(error)}") from None
    if image is None:
        detail = gist(printed)
        raise ImageError(f"cannot decode image {path}: not a readable image file"
                         + (f" ({detail})" if detail else ""))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
