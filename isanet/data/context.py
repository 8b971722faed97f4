"""The context task: a synthetic data set whose labels cannot be decided from local appearance.

Every picture holds one small coloured **beacon** (red, green or blue) and two to four grey **objects**, all
drawn with exactly the same grey and the same stripe texture. An object's class is the *team* of the beacon in
the same picture: the very same grey square is "red team" in one image and "blue team" in the next. The
beacon is always far from every object (at least :data:`MIN_CUE_DISTANCE` of the image side between the
beacon's edge and any object pixel), so nothing near an object says which team it is on.

Why a head without context cannot solve it: a pixel's prediction depends only on the pixels inside its
receptive field. The teaching model's backbone (ResNet-V1c-10, :data:`isanet.engine.recipes.TEACHING`) and a
head without a context module see a few tens of pixels around an object pixel, which never contain the
beacon; from there the three teams look identical, so the best such a model can do is guess one team for all
objects (about a third of the object pixels right, an mIoU of roughly (background + beacon + 1/3) / 5).
A head with long-range attention can read the beacon's colour from anywhere in the picture: ISA in two hops
(the long-range step carries the beacon into every block through the pixels of its group, the short-range
step spreads it within each block), dense attention in one. Window attention whose window is smaller than the
beacon distance cannot, whatever it learns. Background and beacon are decidable locally.

The data set is written (``write_sample_dataset("context", out)``, ``isanet sample-data context``) in the folder
layout of :mod:`isanet.data.folder` (``classes.txt``, ``palette.txt``, ``images/{train,val}``,
``masks/{train,val}``, ``SAMPLE_DATA.txt``), so train, eval, predict, the explorer and the notebooks read it as
they read a user's folder (``--dataset folder``). Everything is a function of ``seed``; it is SYNTHETIC and
measures what attention can carry across a picture, nothing about real scenes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from isanet.data.synthetic import class_texture, write_image, write_label

CONTEXT_CLASSES = ("background", "beacon", "red team", "green team", "blue team")
BEACON = 1  # the class value of the beacon
TEAM_CLASSES = (2, 3, 4)  # the class values of the teams (red, green, blue), whose pixels need the beacon
#: The beacon's colour for each team (RGB); the team classes are 2, 3, 4 in this order.
TEAM_COLOURS = ((210, 40, 40), (40, 180, 60), (40, 80, 220))
#: The mask palette: the team classes are drawn in their beacon's colour, so an overlay reads at a glance.
CONTEXT_PALETTE = ((0, 0, 0), (255, 255, 255), *TEAM_COLOURS)
BACKGROUND_COLOUR = (150, 140, 110)
OBJECT_GREY = (125, 125, 125)
#: The defaults of ``isanet sample-data context``: the teaching set (more and larger images than the other
#: sample kinds, which only exercise code paths).
CONTEXT_DEFAULTS = dict(num_train=96, num_val=24, size=160)
CONTEXT_MIN_SIZE = 64  # pixels: below it the beacon and the objects no longer fit apart
MIN_CUE_DISTANCE = 0.3  # of the image side: the least gap between the beacon and any object pixel
BEACON_SIDE = 0.2  # of the image side: at stride 8 and down_factor 4 it covers every long-range group
OBJECTS_PER_IMAGE = (2, 4)  # inclusive


def _beacon(rng: np.random.Generator, side: int) -> tuple[int, int, int]:
    """Top-left corner and side of the beacon square, near one of the picture's four corners (within a quarter
    of the side of it), which leaves room for objects far from it."""
    size = max(int(round(BEACON_SIDE * side)), 4)
    zone = side // 4
    y, x = (int(value) if rng.integers(2) else side - size - int(value) for value in rng.integers(0, zone + 1, 2))
    return y, x, size


def _object(rng: np.random.Generator, side: int) -> np.ndarray:
    """A random ellipse or rectangle mask, 15-35 % of the picture across."""
    shape = np.zeros((side, side), np.uint8)
    center = tuple(int(value) for value in rng.integers(0, side, 2))
    axes = tuple(int(value) for value in rng.integers(int(0.15 * side), int(0.35 * side) + 1, 2))
    if rng.integers(2):
        cv2.ellipse(shape, center, (axes[0] // 2, axes[1] // 2), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        cv2.rectangle(shape, (center[0] - axes[0] // 2, center[1] - axes[1] // 2),
                      (center[0] + axes[0] // 2, center[1] + axes[1] // 2), 1, -1)
    return shape.astype(bool)


def context_scene(rng: np.random.Generator, side: int, team: int) -> tuple[np.ndarray, np.ndarray]:
    """One picture of the context task for ``team`` (0 red, 1 green, 2 blue): ``(image RGB uint8, label uint8)``,
    both ``side x side``.

    Objects are drawn by rejection: a candidate that comes closer to the beacon than :data:`MIN_CUE_DISTANCE`
    is redrawn (up to 50 tries each, so a picture may hold fewer objects, never a near one).
    """
    y, x, size = _beacon(rng, side)
    outside = np.ones((side, side), np.uint8)
    outside[y:y + size, x:x + size] = 0
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, 5)  # side x side: pixels from the beacon's edge
    label = np.zeros((side, side), np.uint8)
    wanted = int(rng.integers(OBJECTS_PER_IMAGE[0], OBJECTS_PER_IMAGE[1] + 1))
    placed = 0
    for _ in range(50 * wanted):
        shape = _object(rng, side)
        if shape.any() and distance[shape].min() >= MIN_CUE_DISTANCE * side:
            label[shape] = TEAM_CLASSES[team]
            placed += 1
            if placed == wanted:
                break
    label[y:y + size, x:x + size] = BEACON
    return _render(label, team, rng), label


def _render(label: np.ndarray, team: int, rng: np.random.Generator) -> np.ndarray:
    """Background, grey objects (one look for every team) and the beacon in its team's colour, with a random
    light level and pixel noise; the object texture is the same on every image, so it says nothing of the team."""
    colours = np.array([BACKGROUND_COLOUR, TEAM_COLOURS[team], OBJECT_GREY, OBJECT_GREY, OBJECT_GREY], np.float32)
    image = colours[label]  # side x side x 3
    texture = {0: class_texture(label.shape, 0), 2: class_texture(label.shape, 2)}
    image[label == 0] += 25 * texture[0][label == 0, None]
    objects = label >= 2
    image[objects] += 30 * texture[2][objects, None]
    image = image * rng.uniform(0.85, 1.15) + rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_context(root: Path, num_train: int, num_val: int, size: int, rng: np.random.Generator) -> Path:
    """The context task's writer (:data:`isanet.data.registry.DATASETS` ``"context"``): ``size``-px square pictures
    in the folder layout into ``root``. Teams are dealt in shuffled rounds per split, so each split holds every
    team about equally often."""
    for split, count in (("train", num_train), ("val", num_val)):
        rounds = [rng.permutation(len(TEAM_COLOURS)) for _ in range(-(-count // len(TEAM_COLOURS)))]
        for index, team in enumerate(np.concatenate(rounds)[:count]):
            image, label = context_scene(rng, size, int(team))
            write_image(root / "images" / split / f"scene_{index:04d}.png", image)
            write_label(root / "masks" / split / f"scene_{index:04d}.png", label)
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in CONTEXT_CLASSES))
    (root / "palette.txt").write_text("".join(f"{r} {g} {b}\n" for r, g, b in CONTEXT_PALETTE))
    return root
