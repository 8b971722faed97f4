"""Every head of the registry: it builds from a config, trains (finite loss, gradient reaching the query and key
projections of every attention hop) on a 16x16 feature map, and survives a save / load round trip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import isanet
from isanet.io.checkpoint import load_model
from isanet.models.heads import HEADS, AttentionHead

pytestmark = pytest.mark.usefixtures("one_thread")
SIDE = 128  # input pixels: a 16 x 16 feature map at the backbone's stride 8


def tiny(head: str) -> isanet.ISANet:
    torch.manual_seed(0)
    return isanet.ISANet(isanet.ISANetConfig.tiny(head=head))


def test_config_and_cli_offer_the_registry() -> None:
    assert tuple(HEADS) == ("isa", "dense", "none", "ccnet", "axial", "window", "strided")
    with pytest.raises(ValueError, match=r"head must be one of \('isa', 'dense', 'none', 'ccnet'"):
        isanet.ISANetConfig(head="linear")
    with pytest.raises(ValueError, match="window_size must be a positive integer"):
        isanet.ISANetConfig(window_size=0)
    with pytest.raises(ValueError, match="strided takes a square down_factor"):
        isanet.ISANet(isanet.ISANetConfig.tiny(head="strided", down_factor=(4, 8)))


@pytest.mark.parametrize("head", list(HEADS))
def test_head_trains_one_step_with_gradient_on_its_attention(head: str) -> None:
    model = tiny(head).train()
    images = torch.randn(2, 3, SIDE, SIDE)
    labels = torch.randint(0, 5, (2, SIDE, SIDE))
    logits, aux = model(images)
    loss = F.cross_entropy(logits, labels) + 0.4 * F.cross_entropy(aux, labels)
    loss.backward()
    assert torch.isfinite(loss)
    projections = {name: param.grad for name, param in model.decode_head.named_parameters()
                   if "query_project" in name or "key_project" in name}
    assert bool(projections) == (HEADS[head].hops > 0)
    dead = [name for name, grad in projections.items() if grad is None or not grad.abs().sum() > 0]
    assert not dead, f"no gradient reaches {dead}"


@pytest.mark.parametrize("head", list(HEADS))
def test_head_round_trips_through_a_checkpoint(head: str, tmp_path) -> None:
    model = tiny(head).eval()
    path = isanet.save_checkpoint(model, tmp_path / f"{head}.pth")
    loaded = load_model(path).eval()
    assert loaded.config.head == head and type(loaded.decode_head) is type(model.decode_head)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_hops_are_what_the_spec_says() -> None:
    """Two hops for every sparse head (criss-cross: one layer run twice with the same weights)."""
    ccnet = tiny("ccnet").decode_head
    assert isinstance(ccnet, AttentionHead) and len(ccnet.attention) == 1 and ccnet.recurrences == 2
    window = tiny("window").decode_head.attention
    assert [(layer.window, layer.shift) for layer in window] == [(4, 0), (4, 2)]
    strided = tiny("strided").decode_head.attention
    assert [layer.stride for layer in strided] == [8, 8]
    for head in ("ccnet", "axial", "window", "strided"):
        module = tiny(head).decode_head
        hops = sum(len(layer.hop_masks(4, 4)) for layer in module.attention) * module.recurrences
        assert hops == HEADS[head].hops == 2


def test_attention_weights_are_returned_or_refused_in_one_line() -> None:
    x = torch.randn(1, 3, 64, 64)
    for head, spec in HEADS.items():
        model = tiny(head).eval()
        if spec.attention_weights:
            assert model.forward_with_attention(x).logits.shape == (1, 5, 64, 64)
        else:
            with pytest.raises(ValueError, match=f"head='{head}'"):
                model.forward_with_attention(x)


def test_published_heads_keep_their_parameter_names() -> None:
    names = {name.split(".")[1] for name in tiny("isa").state_dict() if name.startswith("decode_head.")}
    assert names == {"conv_seg", "in_conv", "global_relation", "local_relation", "out_conv"}
