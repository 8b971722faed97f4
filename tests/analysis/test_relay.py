"""The relay measurement: by hand on a 4 x 4 map of 2 x 2 blocks, and on a real capture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from isanet.analysis.relay import (
    RelayAttention,
    needs_relay,
    relay_attention,
    relay_offsets,
    relay_over_images,
    relay_weight_map,
    strongest_relay_pixel,
)
from isanet.models.isa import ISAWeights, Partition

CUE, OBJECT = 1, 2


def weights_of(short: torch.Tensor) -> ISAWeights:
    p = Partition(4, 4, 2, 2)  # 4 blocks of 2 x 2, 4 long-range groups (in-block offsets) of 4
    return ISAWeights(p, torch.full((1, 4, 4, 4), 0.25), short[None])


def test_by_hand_on_two_blocks():
    label = np.zeros((4, 4), int)
    label[0, 0] = CUE  # offset 0 of block 0: the long-range group of offset 0 holds the cue
    label[1, 1] = OBJECT  # offset 3 of block 0: cannot read the cue in step 1 -> measured
    label[3, 2] = OBJECT  # offset 2 of block 3 -> measured
    label[2, 2] = OBJECT  # offset 0 of block 3: reads the cue itself in step 1 -> not measured
    uniform = torch.full((4, 4, 4), 0.25)
    result = relay_attention(weights_of(uniform), label, [CUE], [OBJECT])
    assert result == RelayAttention(2, 0.5, 0.5) and result.lift == 1.0  # uniform weights: no preference
    learnt = uniform.clone()
    learnt[3, 2] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # block 3's offset-2 pixel reads only the relay (offset 0)
    result = relay_attention(weights_of(learnt), label, [CUE], [OBJECT])
    assert (result.queries, result.weight, result.uniform) == (2, 1.25, 0.5) and result.lift == 2.5


def test_the_pixels_that_need_the_relay_by_hand():
    label = np.zeros((4, 4), int)
    label[0, 0] = CUE
    label[1, 1] = label[3, 2] = label[2, 2] = OBJECT  # as above: offsets 3, 2 need the relay, offset 0 does not
    p = Partition(4, 4, 2, 2)
    assert relay_offsets(p, label, [CUE]).tolist() == [True, False, False, False]
    expected = np.zeros((4, 4), bool)
    expected[1, 1] = expected[3, 2] = True
    assert np.array_equal(needs_relay(p, label, [CUE], [OBJECT]), expected)
    odd = np.zeros((3, 3), int)  # padded to 4 x 4 (one row and column at the bottom / right): offsets shift
    odd[0, 0], odd[2, 2], odd[0, 1] = CUE, OBJECT, OBJECT
    q = Partition(3, 3, 2, 2)
    assert needs_relay(q, odd, [CUE], [OBJECT]).tolist() == [[False, True, False], [False] * 3, [False] * 3]


def test_the_weight_map_holds_each_measured_pixels_weight_by_hand():
    label = np.zeros((4, 4), int)
    label[0, 0] = CUE
    label[1, 1] = label[3, 2] = label[2, 2] = OBJECT
    learnt = torch.full((4, 4, 4), 0.25)
    learnt[3, 2] = torch.tensor([0.7, 0.1, 0.1, 0.1])  # block 3 (bottom right), offset 2 = pixel (3, 2)
    weights = relay_weight_map(weights_of(learnt), label, [CUE], [OBJECT])
    expected = np.full((4, 4), np.nan)
    expected[1, 1], expected[3, 2] = 0.25, 0.7  # each pixel's weight on its block's offset-0 member
    np.testing.assert_allclose(weights, expected, rtol=1e-6)  # NaN where nothing is measured, in both
    assert strongest_relay_pixel(weights) == (3, 2)  # 0.7 beats 0.25


def test_no_pixel_to_measure_when_the_cue_reaches_every_group():
    label = np.zeros((4, 4), int)
    label[0:2, 0:2] = CUE  # a whole block: every offset holds a cue pixel
    label[3, 3] = OBJECT
    result = relay_attention(weights_of(torch.full((4, 4, 4), 0.25)), label, [CUE], [OBJECT])
    assert result.queries == 0 and np.isnan(result.lift)
    assert strongest_relay_pixel(relay_weight_map(weights_of(torch.full((4, 4, 4), 0.25)), label, [CUE],
                                                  [OBJECT])) is None


def test_over_images_on_random_weights_is_near_uniform(one_thread):
    from isanet import ISANet, ISANetConfig
    from isanet.data.sample_checkpoint import random_state_dict

    model = ISANet(ISANetConfig.tiny(down_factor=(4, 4), channels=16, isa_channels=8, aux_channels=8))
    model.load_state_dict(random_state_dict(model, 0))
    model.eval()
    label = np.zeros((128, 128), np.uint8)
    label[0:8, 0:8] = CUE  # one feature pixel: one long-range group of 16
    label[64:128, 64:128] = OBJECT
    image = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    to_tensor = lambda picture: torch.tensor(picture, dtype=torch.float32).permute(2, 0, 1) / 255
    result = relay_over_images(model, [{"image": image, "label": label}], to_tensor, [CUE], [OBJECT])
    assert result.queries == 64 - 4  # the 8 x 8 object pixels of the 16 x 16 map, less the four at the cue's offset
    assert result.uniform == pytest.approx(result.queries / 16)
    assert 0.2 < result.lift < 5  # random projections: no strong preference either way
    dense = ISANet(ISANetConfig.tiny(head="dense"))
    with pytest.raises(ValueError, match="ISA models only"):
        relay_over_images(dense.eval(), [{"image": image, "label": label}], to_tensor, [CUE], [OBJECT])
