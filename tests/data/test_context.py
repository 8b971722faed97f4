"""The context task: folder layout, the beacon far from every object, teams balanced, and objects that look the
same whatever their team (so a head without context cannot tell them apart)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from isanet.cli import main
from isanet.data.context import (
    BEACON,
    CONTEXT_CLASSES,
    CONTEXT_PALETTE,
    CONTEXT_TASKS,
    MIN_CUE_DISTANCE,
    ONE_HOP_BEACON_SIDE,
    RELAY_BEACON_SIDE,
    TEAM_CLASSES,
    TEAM_COLOURS,
    beacon_box,
    beacon_team,
    context_scene,
    move_beacon,
    recolour_beacon,
)
from isanet.data.registry import build_dataset, write_sample_dataset


@pytest.fixture(scope="module")
def context_set(tmp_path_factory):
    return write_sample_dataset("context", tmp_path_factory.mktemp("ctx") / "set", num_train=9, num_val=6, size=96,
                                seed=3)


def test_it_is_a_folder_data_set_the_reader_takes_with_its_classes_and_palette(context_set):
    train = build_dataset("folder", context_set, "train", progress=False)
    val = build_dataset("folder", context_set, "val", progress=False)
    assert (len(train), len(val)) == (9, 6)
    assert train.CLASSES == CONTEXT_CLASSES and train.PALETTE == CONTEXT_PALETTE
    sample = train[0]
    assert sample["image"].shape == (96, 96, 3) and sample["label"].shape == (96, 96)
    assert "SYNTHETIC" in (context_set / "SAMPLE_DATA.txt").read_text()


def test_every_picture_has_one_team_and_its_beacon_far_from_every_object(context_set):
    teams = []
    for mask in sorted((context_set / "masks").rglob("*.png")):
        label = np.array(Image.open(mask))
        present = sorted(set(np.unique(label)) & set(TEAM_CLASSES))
        assert len(present) == 1, (mask, present)  # one team per picture, at least one object
        assert (label == BEACON).any()
        outside = (label != BEACON).astype(np.uint8)
        distance = cv2.distanceTransform(outside, cv2.DIST_L2, 5)
        assert distance[label == present[0]].min() >= MIN_CUE_DISTANCE * label.shape[0] - 1
        teams.append(present[0])
    counts = np.bincount(teams, minlength=5)[list(TEAM_CLASSES)]
    assert counts.max() - counts.min() <= 2, counts  # dealt in rounds per split


def test_objects_look_the_same_for_every_team_and_only_the_beacon_has_the_team_colour():
    rng = np.random.default_rng(0)
    relative = []
    for team in range(len(TEAM_COLOURS)):
        image, label = context_scene(rng, 128, team)
        assert label[label >= 2].min() == TEAM_CLASSES[team]
        objects = image[label == TEAM_CLASSES[team]].astype(float).mean(axis=0)
        background = image[label == 0].astype(float).mean(axis=0)
        assert np.abs(objects / objects.mean() - 1).max() < 0.02  # grey: no colour channel stands out
        relative.append(objects.mean() / background.mean())  # the picture's light level divides out
        beacon = image[label == BEACON].astype(float).mean(axis=0)
        assert np.argmax(beacon) == np.argmax(TEAM_COLOURS[team])  # the beacon shows its team's colour
    assert np.ptp(relative) < 0.03, relative  # the same grey against the background for every team


def test_same_seed_same_data_and_bad_arguments_are_refused(tmp_path):
    first = write_sample_dataset("context", tmp_path / "a", num_train=2, num_val=1, size=64, seed=5)
    second = write_sample_dataset("context", tmp_path / "b", num_train=2, num_val=1, size=64, seed=5)
    for path in first.rglob("*.png"):
        assert path.read_bytes() == (second / path.relative_to(first)).read_bytes()
    with pytest.raises(ValueError, match="not an empty folder"):
        write_sample_dataset("context", first, num_train=1, num_val=1)
    with pytest.raises(ValueError, match="size"):
        write_sample_dataset("context", tmp_path / "c", size=32)


def test_the_cli_writes_it_with_its_own_defaults(tmp_path, capsys):
    assert main(["sample-data", "context", "--out", str(tmp_path / "ctx"), "--num-val", "2", "--size", "64"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    assert len(list((tmp_path / "ctx" / "images" / "train").iterdir())) == 96  # the teaching set's default
    assert len(list((tmp_path / "ctx" / "images" / "val").iterdir())) == 2
    assert main(["sample-data", "context", "--out", str(tmp_path / "x"), "--object-classes", "2"]) == 2
    assert "object_classes applies to" in capsys.readouterr().err


def beacon_offsets(label: np.ndarray, stride: int, groups: int) -> set[tuple[int, int]]:
    """The long-range groups (offsets ``(row mod groups, col mod groups)`` on the stride-``stride`` feature map)
    of the feature pixels the beacon's input pixels fall in."""
    rows, cols = np.nonzero(label == BEACON)
    return {(int(r) // stride % groups, int(c) // stride % groups) for r, c in zip(rows, cols, strict=True)}


@pytest.mark.parametrize("kind, beacon_px, groups, least, most", [
    ("context", 16, 8, 4, 9),  # the relay task: 2-3 feature pixels a side, 4 to 9 of the 64 groups of (8, 8)
    ("context-one-hop", 32, 4, 16, 16),  # 4-5 feature pixels a side: every one of the 16 groups of (4, 4)
])
def test_the_two_geometries_are_what_the_docstring_says(tmp_path, kind, beacon_px, groups, least, most):
    top = write_sample_dataset(kind, tmp_path / kind, num_train=12, num_val=1, seed=2)
    assert f"({kind}, seed 2, 12 train / 1 val" in (top / "SAMPLE_DATA.txt").read_text()
    assert f"a beacon of {beacon_px} px on 160-px pictures" in (top / "SAMPLE_DATA.txt").read_text()
    counts = []
    for mask in sorted((top / "masks" / "train").glob("*.png")):
        label = np.array(Image.open(mask))
        assert beacon_box(label)[2:] == (beacon_px, beacon_px)
        counts.append(len(beacon_offsets(label, stride=8, groups=groups)))
    assert least <= min(counts) and max(counts) <= most, counts
    assert CONTEXT_TASKS[kind].beacon_side == {16: RELAY_BEACON_SIDE, 32: ONE_HOP_BEACON_SIDE}[beacon_px]


def test_context_scene_takes_the_beacon_side():
    relay, one_hop = (context_scene(np.random.default_rng(4), 160, 1, side) for side in
                      (RELAY_BEACON_SIDE, ONE_HOP_BEACON_SIDE))
    assert beacon_box(relay[1])[2:] == (16, 16) and beacon_box(one_hop[1])[2:] == (32, 32)


def test_recolouring_the_beacon_changes_its_team_and_the_objects_labels_only():
    image, label = context_scene(np.random.default_rng(0), 128, team=0)
    assert beacon_team(image, label) == 0
    for team in (1, 2, 0):
        recoloured, relabelled = recolour_beacon(image, label, team)
        assert beacon_team(recoloured, relabelled) == team
        outside = label != BEACON
        assert np.array_equal(recoloured[outside], image[outside])  # only the beacon's pixels change
        assert set(np.unique(relabelled[label >= 2])) == {TEAM_CLASSES[team]}
        assert np.array_equal(relabelled[label < 2], label[label < 2])
        # the light level stays: the beacon's mean colour is the team's colour times the picture's light
        light = image[label == BEACON].mean() / np.mean(TEAM_COLOURS[0])
        mean = recoloured[label == BEACON].astype(float).mean(axis=0)
        assert np.abs(mean - light * np.array(TEAM_COLOURS[team])).max() < 6, (mean, light)
    with pytest.raises(ValueError, match="team must be 0"):
        recolour_beacon(image, label, 3)


def test_moving_the_beacon_keeps_its_pixels_and_refuses_objects_and_the_edge():
    image, label = context_scene(np.random.default_rng(1), 128, team=2)
    y, x, height, width = beacon_box(label)
    free = [(top, left) for top in range(0, 128 - height, 4) for left in range(0, 128 - width, 4)
            if (label[top:top + height, left:left + width] == 0).all()
            and (abs(top - y) >= height or abs(left - x) >= width)]
    top, left = free[len(free) // 2]
    moved, relabelled = move_beacon(image, label, top, left)
    assert beacon_box(relabelled) == (top, left, height, width)
    assert np.array_equal(moved[top:top + height, left:left + width], image[y:y + height, x:x + width])
    assert (relabelled[y:y + height, x:x + width] == 0).all()
    background = {tuple(pixel) for pixel in image[label == 0]}
    assert all(tuple(pixel) in background for pixel in moved[y:y + height, x:x + width].reshape(-1, 3))
    assert np.array_equal(relabelled[label >= 2], label[label >= 2])  # the objects are untouched
    rows, cols = np.nonzero(label >= 2)
    with pytest.raises(ValueError, match="would cover object pixels"):
        move_beacon(image, label, min(int(rows[0]), 128 - height), min(int(cols[0]), 128 - width))
    with pytest.raises(ValueError, match="would leave the 128 x 128 picture"):
        move_beacon(image, label, 128 - height + 1, 0)
    with pytest.raises(ValueError, match="no beacon pixel"):
        beacon_box(np.zeros((8, 8), np.uint8))
