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
    MIN_CUE_DISTANCE,
    TEAM_CLASSES,
    TEAM_COLOURS,
    context_scene,
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
