"""BatchNorm folded into convolutions: the same function, no BatchNorm left, the original untouched."""

import torch
from torch import nn

import isanet
from isanet.data.sample_checkpoint import random_state_dict
from isanet.models.fold import fold_batchnorm, fold_conv_bn


def test_fold_conv_bn_equals_conv_then_bn():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(4, 6, 3, padding=2, dilation=2, bias=True), nn.BatchNorm2d(6)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    nn.init.uniform_(bn.weight, 0.5, 1.5)
    nn.init.uniform_(bn.bias, -0.5, 0.5)
    bn.eval()
    x = torch.randn(2, 4, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(fold_conv_bn(conv, bn)(x), bn(conv(x)), rtol=1e-5, atol=1e-6)


def test_folded_r50_matches_within_1e5_relative(r50, one_thread):
    folded = fold_batchnorm(r50)
    assert not any(isinstance(module, nn.BatchNorm2d) for module in folded.modules())
    # the original is untouched: stem 3 + 16 bottlenecks x 3 + 4 shortcuts + FCN 1 + ISA head 13 (in, out, 2 x 5)
    assert sum(isinstance(module, nn.BatchNorm2d) for module in r50.modules()) == 68
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference, out = r50(x), folded(x)
    assert ((out - reference).abs().max() / reference.abs().max()).item() < 1e-5
    assert torch.equal(out.argmax(1), reference.argmax(1))


def test_fold_keeps_a_batchnorm_without_a_conv_before_it():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 3, 1))
    folded = fold_batchnorm(model)
    assert isinstance(folded[0], nn.BatchNorm2d) and not folded.training


def test_folded_tiny_model_predicts_the_same(tiny_model):
    tiny_model.load_state_dict(random_state_dict(tiny_model, seed=5))
    x = torch.randn(1, 3, 80, 96, generator=torch.Generator().manual_seed(1))
    reference = isanet.predict(tiny_model, x)
    out = isanet.predict(fold_batchnorm(tiny_model), x)
    assert ((out - reference).abs().max() / reference.abs().max()).item() < 1e-5


def test_blocked_fallback_matches_within_1e5_and_leaves_the_original(r50, one_thread):
    from isanet.models.optimize import BlockedBackbone, blocked_copy, blocked_layout_available

    fast = blocked_copy(r50)
    assert isinstance(fast.backbone, BlockedBackbone) == blocked_layout_available("cpu")
    assert not isinstance(r50.backbone, BlockedBackbone)
    x = torch.randn(1, 3, 97, 131, generator=torch.Generator().manual_seed(2))  # odd sizes: ISA pads
    with torch.no_grad():
        reference, out = r50(x), fast(x)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    assert ((out - reference).abs().max() / reference.abs().max()).item() < 1e-5
    # bf16 keeps the ordinary backbone (autocast and the blocked layout do not mix): folding only
    assert not isinstance(blocked_copy(r50, "bf16").backbone, BlockedBackbone)
