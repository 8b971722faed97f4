"""The identity step: with one ISA step's attention replaced by identity the module computes exactly what it
computes by hand (that step reduced to its value and output projections, the other step as dense attention
inside its own groups), with every kernel, in attention capture and in a compiled copy; other heads are refused."""

from __future__ import annotations

import pytest
import torch

from isanet.analysis.identity_step import check_isa, evaluate_identity_step, identity_step, step_name
from isanet.data.sample_checkpoint import random_state_dict
from isanet.models import ISANet, ISANetConfig
from isanet.models.attention import SelfAttentionBlock, identity_steps
from isanet.models.efficient import flex
from isanet.models.efficient.isa_module import ISAModule

pytestmark = pytest.mark.usefixtures("one_thread")
DOWN = 2  # 2 x 2 blocks on a 4 x 6 map: no padding, 6 long-range partners and 4 block neighbours


def seeded_isa(kernel: str = "matmul") -> ISAModule:
    module = ISAModule(8, 4, (DOWN, DOWN), kernel).double()
    module.load_state_dict(random_state_dict(module, 3))
    return module.eval()


def pointwise(relation: SelfAttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """A step that attends each pixel to itself: its value projection, then its output projection."""
    return relation.output_project(relation.value_project(x))


def by_long_range_group(relation: SelfAttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """Dense attention inside each long-range group (same offset in its 2 x 2 block), written out with slices."""
    out = torch.empty_like(x)
    for offset_y in range(DOWN):
        for offset_x in range(DOWN):
            out[:, :, offset_y::DOWN, offset_x::DOWN] = relation(x[:, :, offset_y::DOWN, offset_x::DOWN])
    return out


def by_block(relation: SelfAttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """Dense attention inside each 2 x 2 block, written out with slices."""
    out = torch.empty_like(x)
    for top in range(0, x.shape[2], DOWN):
        for left in range(0, x.shape[3], DOWN):
            out[:, :, top:top + DOWN, left:left + DOWN] = relation(x[:, :, top:top + DOWN, left:left + DOWN])
    return out


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(2, 8, 4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def expected(module: ISAModule, x: torch.Tensor, step: str | None) -> torch.Tensor:
    g, s = module.global_relation, module.local_relation
    first = pointwise(g, x) if step == "long-range" else by_long_range_group(g, x)
    return pointwise(s, first) if step == "short-range" else by_block(s, first)


@pytest.mark.parametrize("kernel", ["matmul", "sdpa", "flex"])
@pytest.mark.parametrize("step", ["long-range", "short-range"])
def test_each_kernel_computes_the_step_as_its_projections_alone(kernel, step, x):
    module = seeded_isa(kernel)
    with torch.no_grad(), flex.compiled(False), identity_steps(step_name(step)):
        out = module(x)
    torch.testing.assert_close(out, expected(module, x, step), rtol=1e-10, atol=1e-12)
    with torch.no_grad(), flex.compiled(False):
        intact = module(x)  # the state is gone on leaving
    torch.testing.assert_close(intact, expected(module, x, None), rtol=1e-10, atol=1e-12)
    assert (intact - out).abs().max() > 1e-3  # and the step mattered on this input


def test_both_steps_identity_leave_the_projections_alone(x):
    module = seeded_isa()
    with torch.no_grad(), identity_steps("long_range"), identity_steps("short_range"):
        out = module(x)
    g, s = module.global_relation, module.local_relation
    torch.testing.assert_close(out, pointwise(s, pointwise(g, x)), rtol=1e-10, atol=1e-12)


def test_capture_returns_identity_weights_for_the_replaced_step(x):
    module = seeded_isa()
    with torch.no_grad(), identity_steps("short_range"):
        context, weights = module.forward_with_attention(x)
    torch.testing.assert_close(context, expected(module, x, "short-range"), rtol=1e-10, atol=1e-12)
    blocks = weights.short_range.shape[1]
    assert torch.equal(weights.short_range, torch.eye(DOWN * DOWN, dtype=x.dtype).expand(2, blocks, 4, 4))
    assert not torch.allclose(weights.long_range, torch.eye(6, dtype=x.dtype))  # the other step attends


def test_a_compiled_copy_sees_the_state(x):
    module = seeded_isa()
    compiled = torch.compile(module, backend="eager")
    with torch.no_grad():
        intact = compiled(x)
        with identity_steps("long_range"):
            ablated = compiled(x)
        again = compiled(x)
    torch.testing.assert_close(ablated, expected(module, x, "long-range"), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(intact, again)
    assert (intact - ablated).abs().max() > 1e-3


def test_names_and_heads_are_checked():
    assert step_name("short-range") == "short_range" and step_name("long_range") == "long_range"
    with pytest.raises(ValueError, match="identity step 'middle': use one of long-range, short-range"):
        step_name("middle")
    with pytest.raises(ValueError, match="identity step must be one of"), identity_steps("middle"):
        pass
    dense = ISANet(ISANetConfig.tiny(head="dense"))
    with pytest.raises(ValueError, match=r"^identity step: head 'dense' has no long-range and short-range step"):
        check_isa(dense)
    with pytest.raises(ValueError, match="head 'window'"), identity_step(ISANet(ISANetConfig.tiny(head="window")),
                                                                          "long-range"):
        pass


def test_evaluation_with_an_identity_step_differs_and_restores(tmp_path):
    from isanet.data.registry import build_dataset, write_sample_dataset
    from isanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from isanet.models.zoo import TestSettings

    model = ISANet(ISANetConfig.tiny(num_classes=19, channels=16, isa_channels=8, aux_channels=8))
    model.load_state_dict(random_state_dict(model, 1))  # varied BN statistics: varied predictions
    model.eval()
    dataset = build_dataset("cityscapes", write_sample_dataset("cityscapes", tmp_path, num_train=1, num_val=2,
                                                               size=64), "val")
    settings = TestSettings(mode="whole", scale=(128, 64), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                            align_corners=False)
    intact = evaluate_identity_step(model, dataset, settings, None, progress=False)
    ablated = evaluate_identity_step(model, dataset, settings, "long-range", progress=False)
    assert ablated["confusion"] != intact["confusion"]
    assert evaluate_identity_step(model, dataset, settings, None, progress=False)["confusion"] == intact["confusion"]


def test_the_optimized_copy_follows_the_identity_step(monkeypatch):
    from isanet.models import optimize

    monkeypatch.setattr(optimize, "BACKEND", "eager")  # the wiring; Inductor's own compile is tested elsewhere
    model = ISANet(ISANetConfig.tiny(channels=16, isa_channels=8, aux_channels=8))
    model.load_state_dict(random_state_dict(model, 2))
    model.eval()
    fast = optimize.optimize_for_inference(model)
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        intact = fast(image)
        with identity_step(model, "short-range"):
            ablated, reference = fast(image), model(image)
    torch.testing.assert_close(ablated, reference, rtol=1e-4, atol=1e-4)  # BatchNorm folded: equal to rounding
    assert (ablated - intact).abs().max() > 1e-2
