"""The context task: a synthetic data set whose labels cannot be decided from local appearance.

Every picture holds one small coloured **beacon** (red, green or blue) and two to four grey **objects**, all
drawn with exactly the same grey and the same stripe texture. An object's class is the *team* of the beacon in
the same picture: the very same grey square is "red team" in one image and "blue team" in the next. The
beacon is always far from every object (at least :data:`MIN_CUE_DISTANCE` of the image side between the
beacon's edge and any object pixel), so nothing near an object says which team it is on.

Why a head without context cannot solve it: a pixel's prediction depends on the pixels inside its receptive
field, and mostly on the near ones. The teaching model's backbone (ResNet-V1c-10,
:data:`isanet.engine.recipes.TEACHING`) puts 90 % of an output pixel's input gradient inside a square of about
78 px (notebook 04 measures it), so the beacon, at least :data:`MIN_CUE_DISTANCE` of the side (48 px at 160) from
every object, reaches an object pixel's features faintly at best; from there the three teams look alike, and a
head without a context module does about as well as guessing one team for all objects (measured: about 50 mIoU,
roughly (background + beacon + 1/3) / 5).
A head with long-range attention can read the beacon's colour from anywhere in the picture; dense attention
does it in one hop. Window attention whose window is smaller than the beacon distance cannot, whatever it learns.
Background and beacon are decidable locally.

Two geometries, two sample kinds (:data:`CONTEXT_TASKS`), told apart by the beacon's side alone:

* ``context``, **the relay task** (the teaching default): a beacon of :data:`RELAY_BEACON_SIDE` (a tenth of the
  side: 16 px at 160). The teaching model (stride 8, ``down_factor (8, 8)``) sees a 20 x 20 feature map, padded to
  24 x 24: 64 long-range groups (pixels 8 apart, one per offset ``(i mod 8, j mod 8)``) of 9, and 9 blocks of
  8 x 8. The beacon covers 2 to 3 feature pixels a side, so its pixels hold 4 to 9 of the 64 offsets: only those
  groups carry the cue, and one pixel of each block belongs to each of them. An object pixel in another group
  gets the team in two hops: step 1 brings the cue to its block's **relay pixels** (those of the block in a
  cue-carrying group, one per such group), step 2 spreads it from them across the block. Replacing either step's
  attention by identity (:mod:`isanet.analysis.identity_step`) should therefore cost the model the objects.
  What the backbone's receptive field spreads of the beacon beyond its own pixels is measured, not assumed
  (:func:`isanet.analysis.relay.relay_attention`, the identity-step evaluation).
* ``context-one-hop``, the contrast: a beacon of :data:`ONE_HOP_BEACON_SIDE` (a fifth: 32 px at 160), the
  geometry of the first teaching model (``down_factor (4, 4)``: 16 groups of 25). Its 4 to 5 feature pixels a side
  cover every one of the 4 x 4 offsets, so every long-range group holds beacon pixels and the first hop alone
  brings the team to every object: the short-range step is not needed, and the measurements show it (an identity
  short-range step cost that model 0.1 mIoU).

The data set is written (``write_sample_dataset("context", out)``, ``isanet sample-data context`` or
``context-one-hop``) in the folder layout of :mod:`isanet.data.folder` (``classes.txt``, ``palette.txt``,
``images/{train,val}``, ``masks/{train,val}``, ``SAMPLE_DATA.txt``), so train, eval, predict, the explorer and the
notebooks read it as they read a user's folder (``--dataset folder``). Everything is a function of ``seed``; it is
SYNTHETIC and measures what attention can carry across a picture, nothing about real scenes.
"""

from __future__ import annotations

from dataclasses import dataclass
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
RELAY_BEACON_SIDE = 0.1  # of the image side: the relay task's beacon reaches a few of the 64 long-range groups
ONE_HOP_BEACON_SIDE = 0.2  # of the image side: at stride 8 and down_factor 4 it covers every long-range group
OBJECTS_PER_IMAGE = (2, 4)  # inclusive


@dataclass(frozen=True)
class ContextTask:
    """One geometry of the context task: a sample kind of :data:`isanet.data.registry.DATASETS`."""

    kind: str
    beacon_side: float  # of the image side
    summary: str  # a line for SAMPLE_DATA.txt and the docs


CONTEXT_TASKS: dict[str, ContextTask] = {task.kind: task for task in (
    ContextTask("context", RELAY_BEACON_SIDE, "the relay task: the beacon reaches a few long-range groups, so "
                "both ISA steps are needed"),
    ContextTask("context-one-hop", ONE_HOP_BEACON_SIDE, "the one-hop contrast: the beacon covers every "
                "long-range group of down_factor (4, 4), so the long-range step alone suffices"),
)}


def beacon_pixels(side: int, beacon_side: float) -> int:
    """The beacon's side in pixels on a ``side``-px picture (at least 4)."""
    return max(int(round(beacon_side * side)), 4)


def _beacon(rng: np.random.Generator, side: int, beacon_side: float) -> tuple[int, int, int]:
    """Top-left corner and side of the beacon square, near one of the picture's four corners (within a quarter
    of the side of it), which leaves room for objects far from it."""
    size = beacon_pixels(side, beacon_side)
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


def context_scene(rng: np.random.Generator, side: int, team: int,
                  beacon_side: float = RELAY_BEACON_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """One picture of the context task for ``team`` (0 red, 1 green, 2 blue) with a beacon of ``beacon_side`` of
    the picture's side: ``(image RGB uint8, label uint8)``, both ``side x side``.

    Objects are drawn by rejection: a candidate that comes closer to the beacon than :data:`MIN_CUE_DISTANCE`
    is redrawn (up to 50 tries each, so a picture may hold fewer objects, never a near one).
    """
    y, x, size = _beacon(rng, side, beacon_side)
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


def write_context(root: Path, num_train: int, num_val: int, size: int, rng: np.random.Generator, *,
                  kind: str = "context") -> Path:
    """The writer of the context task ``kind`` (a name in :data:`CONTEXT_TASKS`, each a sample kind of
    :data:`isanet.data.registry.DATASETS`): ``size``-px square pictures in the folder layout into ``root``. Teams
    are dealt in shuffled rounds per split, so each split holds every team about equally often."""
    beacon_side = CONTEXT_TASKS[kind].beacon_side
    for split, count in (("train", num_train), ("val", num_val)):
        rounds = [rng.permutation(len(TEAM_COLOURS)) for _ in range(-(-count // len(TEAM_COLOURS)))]
        for index, team in enumerate(np.concatenate(rounds)[:count]):
            image, label = context_scene(rng, size, int(team), beacon_side)
            write_image(root / "images" / split / f"scene_{index:04d}.png", image)
            write_label(root / "masks" / split / f"scene_{index:04d}.png", label)
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in CONTEXT_CLASSES))
    (root / "palette.txt").write_text("".join(f"{r} {g} {b}\n" for r, g, b in CONTEXT_PALETTE))
    return root


# ------------------------------------------------------------------------------------- editing a picture

def beacon_box(label: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the beacon in ``label`` (the box around its pixels)."""
    rows, cols = np.nonzero(label == BEACON)
    if rows.size == 0:
        raise ValueError(f"the label holds no beacon pixel (class {BEACON}): not a context-task picture")
    return int(rows.min()), int(cols.min()), int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def beacon_team(image: np.ndarray, label: np.ndarray) -> int:
    """The team (0 red, 1 green, 2 blue) whose colour the beacon's pixels are closest to in hue (their mean
    colour's direction, which the light level does not change)."""
    mean = image[label == BEACON].astype(np.float64).mean(axis=0)
    colours = np.array(TEAM_COLOURS, np.float64)
    cosine = colours @ mean / (np.linalg.norm(colours, axis=1) * np.linalg.norm(mean) + 1e-12)
    return int(np.argmax(cosine))


def recolour_beacon(image: np.ndarray, label: np.ndarray, team: int) -> tuple[np.ndarray, np.ndarray]:
    """The same picture with its beacon in ``team``'s colour, and the label a model that reads the beacon should
    then give: every object pixel on ``team``. The picture's light level and the beacon's pixel noise are kept
    (the old colour is taken out under them and the new one put in)."""
    if team not in range(len(TEAM_COLOURS)):
        raise ValueError(f"team must be 0 (red), 1 (green) or 2 (blue), got {team}")
    beacon = label == BEACON
    old_colour = np.array(TEAM_COLOURS[beacon_team(image, label)], np.float32)
    pixels = image[beacon].astype(np.float32)  # N x 3
    light = pixels.mean() / old_colour.mean()  # the picture's light level, as _render drew it
    recoloured, relabelled = image.copy(), label.copy()
    recoloured[beacon] = np.clip(pixels + light * (np.array(TEAM_COLOURS[team], np.float32) - old_colour), 0, 255)
    relabelled[label >= TEAM_CLASSES[0]] = TEAM_CLASSES[team]
    return recoloured, relabelled


def move_beacon(image: np.ndarray, label: np.ndarray, top: int, left: int,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The same picture with its beacon moved so that its top-left corner is at ``(top, left)``: the old square
    is filled with background pixels drawn from the picture (``seed``), the beacon's pixels copied to the new
    square. The new square must lie inside the picture and on background or the old beacon only (an object under
    it would lose pixels); it may come near objects, which makes their team a local matter."""
    y, x, height, width = beacon_box(label)
    side_y, side_x = label.shape
    if not (0 <= top <= side_y - height and 0 <= left <= side_x - width):
        raise ValueError(f"the beacon ({height} x {width}) at ({top}, {left}) would leave the {side_y} x {side_x} "
                         "picture")
    target = label[top:top + height, left:left + width]
    if ((target != 0) & (target != BEACON)).any():
        raise ValueError(f"the beacon at ({top}, {left}) would cover object pixels; choose background")
    patch, patch_label = image[y:y + height, x:x + width].copy(), label[y:y + height, x:x + width].copy()
    background = image[label == 0]  # N x 3: the pixels that may fill the old square
    rng = np.random.default_rng(seed)
    moved, relabelled = image.copy(), label.copy()
    moved[y:y + height, x:x + width] = background[rng.integers(0, len(background), (height, width))]
    relabelled[y:y + height, x:x + width] = 0
    moved[top:top + height, left:left + width] = patch
    relabelled[top:top + height, left:left + width] = patch_label
    return moved, relabelled
