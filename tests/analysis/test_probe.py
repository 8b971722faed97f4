"""Attention probes: capturing leaves the logits alone, the maps are the captured weights put back on the map,
the composed map is the two-stage product, and the weights are the whole of ISA's mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import isanet
from isanet.analysis.compare import max_abs_difference, max_relative_difference
from isanet.analysis.isa_matrices import pixel_groups
from isanet.analysis.probe import (
    AttentionCapture,
    capture,
    composed_map,
    feature_to_image,
    image_to_feature,
    probe,
    recompute_isa_context,
    upsample_map,
)
from isanet.data.sample_checkpoint import random_state_dict
from isanet.models.isa import Partition, long_range_group_ids, short_range_group_ids

IMAGE_SIZE = (85, 101)  # an 11 x 13 feature map: ISA pads it to 16 x 16, unevenly (2+3, 1+2)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(1, 3, *IMAGE_SIZE, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def model() -> isanet.ISANet:
    model = isanet.ISANet(isanet.ISANetConfig.tiny())
    model.load_state_dict(random_state_dict(model, seed=1))
    return model.eval()


@pytest.fixture(scope="module")
def captured(model, image) -> AttentionCapture:
    return capture(model, image)


def crop(padded: torch.Tensor, p: Partition) -> torch.Tensor:
    return padded[p.pad_top:p.pad_top + p.height, p.pad_left:p.pad_left + p.width]


# ------------------------------------------------------------------------------------------- the logits

def test_capturing_does_not_change_the_logits(model, image, captured):
    with torch.no_grad():
        before = model(image)
    assert torch.equal(captured.logits, before)
    capture(model, image)
    with torch.no_grad():
        assert torch.equal(model(image), before)


def test_an_sdpa_model_is_captured_with_matmul_and_left_as_it_was(model, image):
    model.decode_head.kernel = "sdpa"
    try:
        with torch.no_grad():
            fused = model(image)
        result = capture(model, image)
        assert model.decode_head.kernel == "sdpa"
    finally:
        model.decode_head.kernel = "matmul"
    assert max_relative_difference(result.logits, fused) < 1e-5


def test_a_model_in_training_mode_stays_in_training_mode(model, image):
    model.train()
    try:
        result = capture(model, image)
        assert model.training and model.decode_head.training
    finally:
        model.eval()
    with torch.no_grad():
        assert torch.equal(result.logits, model(image))


# ------------------------------------------------------------------------------------------------ the maps

def test_stage_maps_sit_on_the_pixels_groups_and_sum_to_one_with_padding(captured):
    p = captured.isa.partition
    assert (p.height, p.width, p.padded_h, p.padded_w) == (11, 13, 16, 16)
    for row, col in [(0, 0), (3, 5), (10, 12), (7, 0)]:
        result = captured.pixel(row, col)
        long_group, short_group = pixel_groups(p, row, col)
        for attention_map, group in ((result.long_range, long_group), (result.short_range, short_group)):
            support = np.zeros((p.padded_h, p.padded_w), bool)
            support[group[:, 0], group[:, 1]] = True
            assert np.array_equal(attention_map.feature > 0, crop(torch.from_numpy(support), p).numpy())
            assert attention_map.feature.shape == (11, 13) and attention_map.image.shape == IMAGE_SIZE
            assert attention_map.feature.sum() + attention_map.padding_mass == pytest.approx(1, abs=1e-5)
        assert result.dense.padding_mass == 0
        assert result.dense.feature.sum() == pytest.approx(1, abs=1e-5)


def test_some_mass_falls_on_padding_and_is_reported(captured):
    # pixel (3, 5): three of its four long-range partners are padding (rows 13, cols 14 of the 16 x 16 map)
    result = captured.pixel(3, 5)
    assert 0 < result.long_range.padding_mass < 1
    assert 0 < result.composed.padding_mass < 1


def full_matrix(weights: torch.Tensor, group_ids: torch.Tensor, member_ids: torch.Tensor) -> torch.Tensor:
    """Scatter per-group attention (groups x members x members) into one padded-map x padded-map matrix."""
    positions = group_ids.numel()
    matrix = torch.zeros(positions, positions, dtype=weights.dtype)
    order = (group_ids.flatten() * positions + member_ids.flatten()).argsort()  # by group, then member
    members = order.view(weights.shape[0], -1)
    for g in range(weights.shape[0]):
        matrix[members[g][:, None], members[g][None, :]] = weights[g]
    return matrix


def test_composed_map_is_the_product_of_the_two_stages_and_reaches_everywhere(captured):
    p, attention = captured.isa.partition, captured.isa
    long_ids, short_ids = long_range_group_ids(p), short_range_group_ids(p)
    first = full_matrix(attention.long_range[0].double(), long_ids, short_ids)
    second = full_matrix(attention.short_range[0].double(), short_ids, long_ids)
    two_hops = second @ first  # row p: sum over q of short[p, q] * long[q, r]
    for row in range(p.height):
        for col in range(p.width):
            index = (row + p.pad_top) * p.padded_w + col + p.pad_left
            composed = composed_map(attention, row, col).double()
            torch.testing.assert_close(composed.flatten(), two_hops[index], rtol=1e-6, atol=1e-9)
            assert (crop(composed, p) > 0).all()  # every pixel reaches this one in two hops
            assert composed.sum().item() == pytest.approx(1, abs=1e-5)


def test_dense_map_is_a_row_of_the_dense_block(model, captured):
    with torch.no_grad():
        _, weights = model.decode_head.global_relation.forward_with_attention(captured.features)
    h, w = captured.feature_size
    for row, col in [(0, 0), (5, 9)]:
        torch.testing.assert_close(captured.dense_row(row, col).flatten(), weights[0, row * w + col])


def test_a_dense_model_has_only_the_dense_map_and_it_is_the_heads_own(image):
    model = isanet.ISANet(isanet.ISANetConfig.tiny(head="dense", auxiliary=False))
    model.load_state_dict(random_state_dict(model, seed=2))
    model.eval()
    result = capture(model, image)
    with torch.no_grad():
        logits, weights = model.decode_head.forward_with_attention(model.backbone(image))
        assert torch.equal(result.logits, model(image))
    pixel = result.pixel(4, 6)
    assert pixel.long_range is None and pixel.short_range is None and pixel.composed is None
    torch.testing.assert_close(torch.from_numpy(pixel.dense.feature).flatten(), weights[0, 4 * 13 + 6])


def test_dense_block_can_be_another_block_or_none(model, image):
    other = isanet.models.heads.DenseHead(in_channels=512, channels=64, isa_channels=32, num_classes=5).eval()
    with_other = capture(model, image, dense_block=other)
    with torch.no_grad():
        _, weights = other.relation.forward_with_attention(with_other.features)
    torch.testing.assert_close(with_other.dense_row(2, 3).flatten(), weights[0, 2 * 13 + 3])
    assert capture(model, image, dense_block=None).pixel(2, 3).dense is None


def test_captured_weights_rebuild_the_isa_context(model, captured):
    head = model.decode_head
    with torch.no_grad():
        forward = head.context(captured.features)
        rebuilt = recompute_isa_context(captured.features, captured.isa, head.global_relation, head.local_relation)
    assert max_relative_difference(rebuilt, forward) < 1e-5


# ---------------------------------------------------------------------------------------- coordinates

@settings(max_examples=50, deadline=None)
@given(feature=st.integers(2, 40), align=st.booleans(), data=st.data())
def test_feature_to_image_and_back_is_the_identity(feature, align, data):
    image = data.draw(st.integers(feature, 12 * feature))
    index = data.draw(st.integers(0, feature - 1))
    point = feature_to_image((index, index), (feature, feature), (image, image), align)
    assert image_to_feature(point, (image, image), (feature, feature), align) == (index, index)


def test_a_pixel_given_in_image_coordinates_is_the_nearest_feature_pixel(model, image, captured):
    row, col = captured.to_image(6, 2)
    by_image = probe(model, image, (row + 0.3, col - 0.3), coords="image")
    assert by_image.pixel == (6, 2)
    np.testing.assert_array_equal(by_image.composed.feature, captured.pixel(6, 2).composed.feature)
    with pytest.raises(ValueError, match="outside"):
        captured.pixel(11, 0)


def test_upsampling_keeps_a_constant_map_constant_and_matches_the_logits_resize():
    np.testing.assert_allclose(upsample_map(np.full((3, 5), 0.25), (17, 30)), 0.25, rtol=1e-6)
    values = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    for align in (False, True):
        expected = torch.nn.functional.interpolate(torch.from_numpy(values)[None, None], size=(31, 45),
                                                   mode="bilinear", align_corners=align)[0, 0].numpy()
        np.testing.assert_array_equal(upsample_map(values, (31, 45), align), expected)


def test_plot_partition_draws_both_groupings(captured):
    from isanet.notebook.partition_plots import plot_partition

    p = captured.isa.partition
    figure = plot_partition(p, pixel=(3, 5))
    assert [axis.get_title() for axis in figure.axes] == [
        f"long-range groups ({p.num_long_range_groups})", f"short-range blocks ({p.num_short_range_groups})"]


def test_bf16_capture_keeps_fp32_attention_close_to_the_fp32_one(model, image, monkeypatch):
    """The backbone runs in bf16 (as on a CPU with AVX-512 BF16), the head and its weights in fp32."""
    from isanet import runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    fp32, bf16 = capture(model, image), capture(model, image, precision="bf16")
    assert bf16.isa.long_range.dtype == bf16.isa.short_range.dtype == bf16.logits.dtype == torch.float32
    assert not torch.equal(bf16.logits, fp32.logits)  # the backbone did run in bf16
    for a, b in ((bf16.isa.long_range, fp32.isa.long_range), (bf16.isa.short_range, fp32.isa.short_range)):
        assert max_abs_difference(a, b) < 0.05  # weights are probabilities: absolute error
    torch.testing.assert_close(bf16.isa.long_range.sum(-1), torch.ones_like(bf16.isa.long_range.sum(-1)))
    picked = bf16.pixel(3, 4)
    assert picked.long_range.feature.dtype == np.float32


# ------------------------------------------------------------------------------ the compiled backbone

@pytest.fixture
def eager_backend(monkeypatch):
    """Dynamo's eager backend: the wiring of capture(optimize=True); Inductor's code is tested in tests/models."""
    monkeypatch.setattr("isanet.models.optimize.BACKEND", "eager")


def test_an_optimized_capture_keeps_the_attention_and_reuses_its_compiled_backbone(model, image, captured,
                                                                                  eager_backend):
    from isanet.analysis import probe
    from isanet.models.optimize import CompiledModel

    fast = capture(model, image, optimize=True)
    compiled = probe._OPTIMIZED_BACKBONES[model.backbone][1]
    assert isinstance(compiled, CompiledModel)
    for a, b in ((fast.isa.long_range, captured.isa.long_range), (fast.isa.short_range, captured.isa.short_range),
                 (fast.logits, captured.logits)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # BatchNorm folded: equal to rounding
    capture(model, image, optimize=True)
    assert probe._OPTIMIZED_BACKBONES[model.backbone][1] is compiled  # same model, same weights: reused
    assert compiled.compiled_shapes == [tuple(image.shape)]  # and compiled once


def test_an_optimized_capture_follows_weights_changed_in_place(image, eager_backend):
    """The compiled copy froze the weights it saw: after an in-place change (as an optimiser step makes) the
    capture must show the new weights' attention, not the frozen one's."""
    model = isanet.ISANet(isanet.ISANetConfig.tiny())
    model.load_state_dict(random_state_dict(model, seed=2))
    model.eval()
    before = capture(model, image, optimize=True)
    with torch.no_grad():
        for parameter in model.backbone.parameters():
            parameter.mul_(1.1)
    after, eager = capture(model, image, optimize=True), capture(model, image)
    assert max_relative_difference(after.logits, eager.logits) <= 1e-5  # folded: equal to rounding
    assert max_relative_difference(before.logits, eager.logits) > 1e-2  # the old copy would have been wrong
    torch.testing.assert_close(after.isa.long_range, eager.isa.long_range, rtol=0, atol=1e-4)
