"""The Jacobian influence of a module, in float64 on small maps: zero where its pattern has no path, equal to a
hand-computed case, and set beside ISA's weights-only rollout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from isanet.analysis.influence import correlation, influence_vs_rollout, jacobian_influence, real_positions, rollout
from isanet.analysis.isa_matrices import attention_matrices
from isanet.data.sample_checkpoint import random_state_dict
from isanet.models.efficient.isa_module import ISAModule
from isanet.models.efficient.registry import build_attention


def _seeded(module: nn.Module) -> nn.Module:
    module.load_state_dict(random_state_dict(module, seed=0))
    return module.eval().double()


def _map(height: int = 6, width: int = 7, channels: int = 8) -> torch.Tensor:
    return torch.randn(1, channels, height, width, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def test_a_pointwise_convolution_influences_only_its_own_pixel_by_the_norm_of_its_weight() -> None:
    conv = nn.Conv2d(3, 5, 1).double().eval()
    influence = jacobian_influence(conv, _map(2, 3, channels=3))
    # y_p = W x_p + b: d y_p / d x_r is W when r = p, else 0 -> the norm of W on the diagonal, zero off it
    expected = torch.eye(6, dtype=torch.float64) * conv.weight.detach().norm()
    torch.testing.assert_close(influence, expected)


def test_influence_is_zero_where_one_window_layer_has_no_path_and_nonzero_where_it_has() -> None:
    window = _seeded(build_attention("window", 8, 4, size=3, layer=1))
    influence = jacobian_influence(window, _map())
    pattern = window.reach(6, 7)
    assert influence[~pattern].abs().max().item() == 0.0
    assert (influence[pattern] > 0).float().mean().item() > 0.9


def test_isa_reaches_every_pair_and_its_rollout_is_the_product_of_the_captured_weights() -> None:
    isa = _seeded(ISAModule(8, 4, (3, 3)))
    x = _map()  # 6 x 7: padded to 6 x 9
    report = influence_vs_rollout(isa, x)
    assert report.influence.shape == report.rollout.shape == (42, 42)
    assert (report.influence > 0).all(), "two hops connect every pair"
    a_long, a_short = attention_matrices(isa.forward_with_attention(x).attention)
    real = real_positions(isa, 6, 7)
    assert real.tolist()[:3] == [1, 2, 3] and real[7].item() == 10  # a padding column on the left and right
    torch.testing.assert_close(report.rollout, (a_short @ a_long)[real][:, real])
    torch.testing.assert_close(rollout(isa, x), report.rollout)
    assert -1.0 <= report.correlation < 0.99, "the rollout is not the module's influence"
    assert report.correlation == pytest.approx(correlation(report.influence, report.rollout))


def test_correlation_of_a_tensor_with_itself_and_its_negation() -> None:
    a = torch.arange(6.0).reshape(2, 3)
    assert correlation(a, 2 * a + 1) == pytest.approx(1.0)
    assert correlation(a, -a) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="^b: shape"):
        correlation(a, a.flatten())


def test_bad_inputs_name_the_argument() -> None:
    isa = ISAModule(8, 4, (3, 3)).double()
    with pytest.raises(ValueError, match="^module: must be in eval mode"):
        jacobian_influence(isa.train(), _map())
    isa.eval()
    with pytest.raises(ValueError, match="^x: expected one"):
        jacobian_influence(isa, _map().expand(2, -1, -1, -1))
    with pytest.raises(ValueError, match="^x: c\\*h\\*w = 8192"):
        jacobian_influence(isa, _map(32, 32))
