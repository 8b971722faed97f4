import pytest
import torch
import torch.nn.functional as F

import isanet
from isanet.models.backbone import ResNetV1c


def test_backbone_returns_four_stages_at_strides_4_8_8_8():
    backbone = ResNetV1c(50).eval()
    with torch.no_grad():
        outputs = backbone(torch.randn(1, 3, 67, 93))
    assert [tuple(o.shape[1:]) for o in outputs] == [(256, 17, 24), (512, 9, 12), (1024, 9, 12), (2048, 9, 12)]


def test_dilations_are_contracted_in_the_first_block_of_each_dilated_stage():
    backbone = ResNetV1c(101)
    dilations = lambda layer: [block.conv2.dilation[0] for block in layer]
    assert dilations(backbone.layer3) == [1] + [2] * 22
    assert dilations(backbone.layer4) == [2, 4, 4]
    assert backbone.layer2[0].conv2.stride == (2, 2) and backbone.layer2[0].conv1.stride == (1, 1)
    assert [m.stride[0] for m in backbone.stem if isinstance(m, torch.nn.Conv2d)] == [2, 1, 1]


def test_unknown_depth_is_rejected():
    with pytest.raises(ValueError, match="depth must be one of"):
        ResNetV1c(34)


def test_logits_at_input_size_and_aux_in_train_mode(tiny_model):
    x = torch.randn(2, 3, 45, 61)
    with torch.no_grad():
        logits = tiny_model(x)
        assert logits.shape == (2, 5, 45, 61)
        tiny_model.train()
        main, aux = tiny_model(x)
    assert main.shape == aux.shape == (2, 5, 45, 61)


def test_forward_is_decode_head_upsampled(tiny_model):
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        features = tiny_model.backbone(x)
        expected = F.interpolate(tiny_model.decode_head(features), size=(40, 56), mode="bilinear",
                                 align_corners=False)
        assert torch.equal(tiny_model(x), expected)
        assert tiny_model.auxiliary_head(features).shape == (1, 5, 5, 7)


def test_wrong_input_shape_names_the_expectation(tiny_model):
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        tiny_model(torch.randn(3, 32, 32))


def test_kernels_and_dense_head_are_drop_in(tiny_model):
    x = torch.randn(1, 3, 72, 80)
    sdpa = isanet.ISANet(isanet.ISANetConfig.tiny(kernel="sdpa"))
    sdpa.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(sdpa.eval()(x), tiny_model(x), rtol=1e-5, atol=1e-5)
    dense = isanet.ISANet(isanet.ISANetConfig.tiny(head="dense"))
    assert dense.eval()(x).shape == (1, 5, 72, 80)
    with pytest.raises(ValueError, match="head must be one of"):
        isanet.ISANetConfig(head="sparse")


def test_no_context_head_is_in_conv_then_out_conv_then_classifier(tiny_model):
    plain = isanet.ISANet(isanet.ISANetConfig.tiny(head="none")).eval()
    head = plain.decode_head
    assert not any("relation" in name for name, _ in plain.named_parameters())
    assert head.out_conv.conv.in_channels == head.out_conv.conv.out_channels == 64  # no [context, x] concat
    x = torch.randn(1, 3, 72, 80)
    with torch.no_grad():
        features = plain.backbone(x)
        by_hand = head.conv_seg(head.out_conv(head.in_conv(features[3])))
        assert torch.equal(head(features), by_hand)
        assert plain(x).shape == (1, 5, 72, 80)
    # the rest of the model is the ISA model's: its weights load, minus the attention and out_conv
    shared = {k: v for k, v in tiny_model.state_dict().items()
              if not k.startswith(("decode_head.global_relation", "decode_head.local_relation",
                                   "decode_head.out_conv"))}
    missing, unexpected = plain.load_state_dict(shared, strict=False)
    assert not unexpected and all(key.startswith("decode_head.out_conv") for key in missing)
    with pytest.raises(ValueError, match="head='none' has no attention"):
        plain.forward_with_attention(x)
    assert isanet.ISANetConfig.from_dict(isanet.ISANetConfig.tiny(head="none").to_dict()).head == "none"


def test_reset_classifier_changes_both_heads(tiny_model):
    backbone_before = tiny_model.backbone.stem[0].weight.clone()
    tiny_model.reset_classifier(7)
    assert tiny_model.num_classes == 7 and tiny_model.auxiliary_head.conv_seg.out_channels == 7
    assert torch.equal(tiny_model.backbone.stem[0].weight, backbone_before)
