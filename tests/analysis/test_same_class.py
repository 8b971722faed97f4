"""Same-class attention mass: hand-made captures whose answers are known by hand, then a real capture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import isanet
from isanet.analysis.probe import AttentionCapture, capture
from isanet.analysis.same_class import (
    combine,
    labels_at_features,
    same_class_attention,
    same_class_over_images,
)
from isanet.data import transforms
from isanet.data.sample_checkpoint import random_state_dict
from isanet.models.isa import ISAWeights, Partition

pytestmark = pytest.mark.usefixtures("one_thread")

HALVES = np.array([[0, 0, 1, 1]] * 4)  # 4 x 4: left half class 0, right half class 1


def hand_capture(size=(4, 4), isa: ISAWeights | None = None, query=None, key=None) -> AttentionCapture:
    """A capture of a ``size`` feature map (the image the same size) built from given weights, no model."""
    h, w = size
    return AttentionCapture(size, size, False, torch.zeros(1, 1, h, w), torch.zeros(1, 1, h, w), isa, query, key)


def uniform_isa(h: int = 4, w: int = 4) -> ISAWeights:
    p = Partition(h, w, 2, 2)
    groups, members = p.loc_h * p.loc_w, p.glb_h * p.glb_w
    return ISAWeights(p, torch.full((1, groups, members, members), 1 / members),
                        torch.full((1, members, groups, groups), 1 / groups))


def test_uniform_isa_weights_put_exactly_the_uniform_share_on_the_own_class():
    # By hand, every query of HALVES: its long-range group (same in-block offset, stride 2) has 2 of 4 pixels in
    # its class; its 2 x 2 block lies inside its half (4 of 4); the composed map is 1/16 everywhere (8 of 16).
    result = same_class_attention(hand_capture(isa=uniform_isa()), HALVES, queries=None)
    assert result.num_queries == 16 and list(result.maps) == ["long_range", "short_range", "composed"]
    expected = {"long_range": 0.5, "short_range": 1.0, "composed": 0.5}
    for name, value in expected.items():
        got = result.maps[name]
        assert got.mass == pytest.approx(value) and got.uniform == pytest.approx(value), name
        assert got.share == pytest.approx(0.5) and got.lift == pytest.approx(1.0)


def test_long_range_weights_on_one_key_are_measured_against_the_group():
    # every long-range query puts all its weight on member 0 of its group (the member in the top-left block):
    # a query in the left half then has mass 1 on its class, one in the right half mass 0 -> mean 0.5 with a
    # uniform baseline of 0.5; with the labels swapped left/right nothing changes by symmetry of the average.
    isa = uniform_isa()
    isa.long_range.zero_()
    isa.long_range[..., 0] = 1.0
    result = same_class_attention(hand_capture(isa=isa), HALVES, queries=None)
    assert result.maps["long_range"].mass == pytest.approx(0.5)
    rows = same_class_attention(hand_capture(isa=isa), np.array([[0] * 4] * 2 + [[1] * 4] * 2), queries=None)
    assert rows.maps["long_range"].mass == pytest.approx(0.5) and rows.maps["long_range"].uniform == 0.5
    # only the left half as queries (the right half ignored): every query's one key is of its class
    left = np.where(HALVES == 0, 0, 255)
    only_left = same_class_attention(hand_capture(isa=isa), left, queries=None)
    assert only_left.num_queries == 8 and only_left.maps["long_range"].mass == pytest.approx(1.0)
    assert only_left.maps["long_range"].uniform == pytest.approx(1.0)  # the ignored keys do not count


def test_dense_uniform_weights_with_ignored_pixels_give_the_class_share():
    # zero queries and keys: every dense row is 1/16. Column 0 is class 0, columns 1-2 class 1, column 3 ignored:
    # 4 queries see 4/12 of their class, 8 see 8/12 -> (4 * 1/3 + 8 * 2/3) / 12 = 5/9.
    label = np.array([[0, 1, 1, 255]] * 4)
    zeros = torch.zeros(16, 2)
    result = same_class_attention(hand_capture(query=zeros, key=zeros), label, queries=None)
    assert list(result.maps) == ["dense"] and result.num_queries == 12
    dense = result.maps["dense"]
    assert dense.mass == pytest.approx(5 / 9) and dense.uniform == pytest.approx(5 / 9)
    assert dense.share == pytest.approx(5 / 9)
    # per class: class 0 queries see 4/12, class 1 queries 8/12; balanced = their plain mean (1/3 + 2/3) / 2
    by_class = result.by_class()
    assert result.counts == {0: 4, 1: 8}
    assert by_class[0]["dense"].mass == pytest.approx(1 / 3) and by_class[1]["dense"].mass == pytest.approx(2 / 3)
    assert result.balanced()["dense"].mass == pytest.approx(0.5) and result.balanced()["dense"].lift == pytest.approx(1)


def test_dense_keys_that_match_the_class_put_all_weight_on_it():
    tokens = torch.nn.functional.one_hot(torch.as_tensor(HALVES.ravel()), 2).float() * 10  # 16 x 2
    result = same_class_attention(hand_capture(query=tokens, key=tokens), HALVES, queries=None)
    dense = result.maps["dense"]
    assert dense.mass == pytest.approx(1.0, abs=1e-10) and dense.uniform == pytest.approx(0.5)
    assert dense.lift == pytest.approx(2.0, abs=1e-9)
    assert "dense" in result.table() and "2.00" in result.table()


def test_labels_are_read_at_the_feature_pixel_centres():
    label = np.arange(16 * 16).reshape(16, 16)
    # a 2 x 2 map over 16 x 16: centres at (i + 0.5) * 8 - 0.5 = 3.5 and 11.5, rounded half up to 4 and 12
    assert labels_at_features(label, (2, 2)).tolist() == [[4 * 16 + 4, 4 * 16 + 12], [12 * 16 + 4, 12 * 16 + 12]]
    assert labels_at_features(label, (2, 2), align_corners=True).tolist() == [[0, 15], [240, 255]]


def test_bad_labels_are_refused_with_the_expected_shapes():
    captured = hand_capture(isa=uniform_isa())
    with pytest.raises(ValueError, match=r"expected the image size \(4, 4\) or the feature size"):
        same_class_attention(captured, np.zeros((3, 3), dtype=int))
    with pytest.raises(ValueError, match="no labelled pixel"):
        same_class_attention(captured, np.full((4, 4), 255))


def test_a_real_capture_gives_fractions_and_averages_the_chosen_queries():
    model = isanet.ISANet(isanet.ISANetConfig.tiny())
    model.load_state_dict(random_state_dict(model, seed=1))
    image = torch.randn(1, 3, 85, 101, generator=torch.Generator().manual_seed(0))  # 11 x 13 features, padded
    captured = capture(model.eval(), image)
    label = np.zeros((85, 101), dtype=int)
    label[:, 50:] = 1
    label[:10] = 255
    result = same_class_attention(captured, label, queries=40, seed=3)
    assert result.num_queries == 40 and result.feature_size == (11, 13)
    assert list(result.maps) == ["long_range", "short_range", "composed", "dense"]
    for value in result.maps.values():
        assert 0.0 < value.mass < 1.0 and 0.0 < value.uniform <= 1.0 and 0.0 < value.share < 1.0
    everything = same_class_attention(captured, label, queries=None)
    assert everything.num_queries == int((labels_at_features(label, (11, 13)) != 255).sum())
    assert same_class_attention(captured, label, queries=40, seed=3) == result  # seeded: the same queries


def test_combine_weights_each_measurement_by_its_queries():
    zeros = torch.zeros(16, 2)
    uniform = same_class_attention(hand_capture(query=zeros, key=zeros), HALVES, queries=None)  # 16 queries, 0.5
    tokens = torch.nn.functional.one_hot(torch.as_tensor(HALVES.ravel()), 2).float() * 10
    peaked = same_class_attention(hand_capture(query=tokens, key=tokens), HALVES, queries=4)  # 4 queries, 1.0
    both = combine([uniform, peaked])
    assert both.num_queries == 20 and both.feature_size == (4, 4)
    assert both.counts == {0: uniform.counts[0] + peaked.counts[0], 1: uniform.counts[1] + peaked.counts[1]}
    assert both.maps["dense"].mass == pytest.approx((16 * 0.5 + 4 * 1.0) / 20)
    assert both.maps["dense"].uniform == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one"):
        combine([])


def test_over_images_reads_labels_of_the_original_size_after_a_resize():
    model = isanet.ISANet(isanet.ISANetConfig.tiny()).eval()
    rng = np.random.default_rng(0)
    samples = [{"image": rng.integers(0, 255, (41, 64, 3), dtype=np.uint8),
                "label": np.where(np.arange(64)[None, :] < 32, 1, 2).repeat(41, axis=0)} for _ in range(2)]
    # keep-ratio resize into a (256, 64) box: 41 x 64 -> 64 x 100, an 8 x 13 feature map
    transform = transforms.TestTransform((256, 64), transforms.IMAGENET_MEAN, transforms.IMAGENET_STD)
    result = same_class_over_images(model, samples, transform, queries=None)
    assert result.feature_size == (8, 13) and result.num_queries == 2 * 8 * 13
    # half the columns of each class at the feature size (6 of the 13 columns read class 1, 7 class 2): the dense map's
    # uniform baseline is the class share, (7/13 * 7/13 + 6/13 * 6/13) averaged over the queries
    assert result.maps["dense"].share == pytest.approx((7 * 7 + 6 * 6) / 13 ** 2)
