"""The stated bounds of every size and count the kit accepts, checked before anything is allocated.

A typo such as ``--size 100000`` must not get the process killed by the kernel after minutes of swapping,
nor ``--repeats 0`` crash deep inside a benchmark: each option's value is checked here (as an ``argparse``
``type=``, so the user gets one line naming the option) or by the same functions from Python. The bounds are
generous for the kit's purpose (teaching and analysis on one machine) and each says why it is where it is.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

#: Longest image side in pixels (sample data, test scales, benchmark maps): 8192 covers every published test
#: scale (Cityscapes 2048x1024) four times over, and one 8192^2 RGB float image is already 768 MiB.
MAX_IMAGE_SIDE = 8192
#: Bytes a decoded picture may take (its RGB pixels and the decoder's buffer): a MAX_IMAGE_SIDE square needs
#: 0.4 GiB, so the cap only stops what the side bound lets through on its way to the model's own memory.
MAX_DECODED_BYTES = 2**30
#: Images, iterations, repeats: large enough for any real run, small enough that a typo is caught.
MAX_COUNT = 10_000_000
#: Images of a synthetic sample data set: 10000 of the largest size would already be tens of GB.
MAX_SAMPLE_IMAGES = 10_000
#: Learning rate: SGD on these models diverges long before it (the recipe's is 0.01); above it is a typo.
MAX_LR = 10.0
#: Width of the picture an attention page is made for: its dense map has (width/8)^2 x (width/8)^2 entries
#: (about 0.6 GB of float32 for a 1024 x 768 picture; 16 times that at twice the width).
MAX_EXPLORER_WIDTH = 1024
#: Feature channels of a benchmark map (ResNet's widest stage has 2048).
MAX_CHANNELS = 16384


def bounded_int(low: int, high: int = MAX_COUNT) -> Callable[[str], int]:
    """An ``argparse`` type: an integer in ``[low, high]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: expected {low} to {high}")
        return value

    return parse


def bounded_float(low: float, high: float = math.inf, *, low_open: bool = False) -> Callable[[str], float]:
    """An ``argparse`` type: a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``); ``nan``
    and ``inf`` are refused, because they would train or measure on silently."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (low_open and value == low) or value > high:
            bound = f"{'above' if low_open else 'at least'} {low:g}" + (f" and at most {high:g}"
                                                                         if math.isfinite(high) else "")
            raise argparse.ArgumentTypeError(f"{text} is out of range: expected a finite number {bound}")
        return value

    return parse


positive_int = bounded_int(1)
non_negative_int = bounded_int(0)
image_side = bounded_int(1, MAX_IMAGE_SIDE)


def check_side(value: int, what: str, low: int = 1) -> int:
    """``value`` as an image side in ``[low, MAX_IMAGE_SIDE]``, else a ``ValueError`` naming ``what``."""
    if not low <= int(value) <= MAX_IMAGE_SIDE:
        raise ValueError(f"{what} {value}: out of range, expected {low} to {MAX_IMAGE_SIDE} pixels "
                         "(isanet.limits.MAX_IMAGE_SIDE)")
    return int(value)
