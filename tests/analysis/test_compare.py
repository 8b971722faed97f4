"""The comparison measures, on numbers small enough to check by hand."""

from __future__ import annotations

import math

import pytest
import torch

from isanet.analysis.compare import (
    max_abs_difference,
    max_relative_difference,
    max_relative_series_difference,
    pixel_agreement,
    relative_norm_difference,
)

REFERENCE = torch.tensor([4.0, -2.0, 1.0])
VALUES = torch.tensor([4.5, -2.0, 0.0])  # off by 0.5, 0 and 1


def test_max_abs_difference_is_the_largest_gap():
    assert max_abs_difference(VALUES, REFERENCE) == 1.0
    assert max_abs_difference(REFERENCE, REFERENCE) == 0.0


def test_max_relative_difference_divides_by_the_largest_reference_value_not_each_one():
    assert max_relative_difference(VALUES, REFERENCE) == 1.0 / 4.0  # element-wise it would be 1.0 (1 vs 0)
    assert max_relative_difference(-VALUES, -REFERENCE) == 0.25  # the magnitude, not the signed maximum


def test_relative_norm_difference_is_the_norm_of_the_error_over_the_norm_of_the_reference():
    error, reference = math.sqrt(0.5**2 + 1.0**2), math.sqrt(4.0**2 + 2.0**2 + 1.0**2)
    assert relative_norm_difference(VALUES, REFERENCE) == pytest.approx(error / reference, rel=1e-15)


def test_measures_are_taken_in_float64_whatever_the_inputs_dtype():
    bf16 = torch.tensor([1.0078125], dtype=torch.bfloat16)  # 1 + 2^-7, exact in bf16
    assert max_relative_difference(bf16, torch.tensor([1.0])) == 2**-7
    assert max_abs_difference(torch.tensor([1e8 + 1], dtype=torch.float64), torch.tensor([1e8])) == 1.0


def test_an_all_zero_reference_gives_a_huge_ratio_not_nan():
    assert max_relative_difference(torch.zeros(3), torch.zeros(3)) == 0.0
    assert max_relative_difference(torch.ones(3), torch.zeros(3)) == pytest.approx(1e30)
    assert relative_norm_difference(torch.zeros(3), torch.zeros(3)) == 0.0


def test_pixel_agreement_is_the_share_of_equal_argmax_classes():
    reference = torch.zeros(1, 2, 2, 2)  # N x classes x H x W: class 1 wins at every pixel
    reference[:, 1] = 1.0
    logits = reference.clone()
    logits[0, 0, 0, 0] = 2.0  # one pixel of four switches to class 0
    assert pixel_agreement(logits, reference) == 0.75
    assert pixel_agreement(reference, reference) == 1.0


def test_max_relative_series_difference_takes_each_step_on_its_own_scale():
    assert max_relative_series_difference([2.0, 1.1, 0.5], [2.0, 1.0, 0.5]) == pytest.approx(0.1)
    assert max_relative_series_difference([3.0], [3.0]) == 0.0


@pytest.mark.parametrize("measure", [max_abs_difference, max_relative_difference, relative_norm_difference,
                                     pixel_agreement])
def test_different_shapes_are_refused_naming_both(measure):
    with pytest.raises(ValueError, match=r"^values of shape \(1, 2, 3\) .* reference of shape \(1, 3, 2\)"):
        measure(torch.zeros(1, 2, 3), torch.zeros(1, 3, 2))


def test_pixel_agreement_needs_a_class_axis():
    with pytest.raises(ValueError, match=r"^logits of shape \(3,\): expected N x classes"):
        pixel_agreement(REFERENCE, REFERENCE)


def test_series_of_different_lengths_or_empty_are_refused():
    with pytest.raises(ValueError, match="^2 values compared with 3 reference values"):
        max_relative_series_difference([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="^values: expected at least one value"):
        max_relative_series_difference([], [])
