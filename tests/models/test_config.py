"""ISANetConfig: what each field builds, how bad values are refused, and how it travels in checkpoint meta."""

import json

import pytest
import torch

import isanet
from isanet.data.sample_checkpoint import random_state_dict
from isanet.io.checkpoint import load_model, read_checkpoint
from isanet.limits import MAX_IMAGE_SIDE
from isanet.models import ISANetConfig, model_config
from isanet.models.config import MAX_BLOCK_SIDE
from isanet.models.heads import DenseHead, ISAHead


def test_defaults_are_the_published_cityscapes_r50():
    config = model_config("isanet_r50-d8_4xb2-40k_cityscapes-512x1024")
    assert config == ISANetConfig()
    assert model_config("isanet_r101-d8_4xb4-20k_voc12aug-512x512") == ISANetConfig(depth=101, num_classes=21)
    assert model_config("isanet_r50-d8_4xb2-40k_cityscapes-769x769").align_corners is True


def test_tiny_builds_the_small_teaching_model():
    model = isanet.ISANet(ISANetConfig.tiny())
    head = model.decode_head
    assert isinstance(head, ISAHead) and head.num_classes == 5
    assert head.in_conv.conv.out_channels == 64 and head.global_relation.key_channels == 32
    assert model.auxiliary_head.convs[0].conv.out_channels == 32
    assert len(model.backbone.layer3) == 2  # two basic blocks per stage
    assert isinstance(isanet.ISANet(ISANetConfig.tiny(head="dense")).decode_head, DenseHead)
    assert isanet.ISANet(ISANetConfig.tiny(auxiliary=False)).auxiliary_head is None


@pytest.mark.parametrize(("field", "value", "message"), [
    ("depth", 34, r"depth must be one of \(10, 18, 50, 101\), got 34"),
    ("num_classes", 0, "num_classes must be a positive integer, got 0"),
    ("channels", -1, "channels must be a positive integer, got -1"),
    ("down_factor", (0, 8), r"down_factor must be two positive integers, got \(0, 8\)"),
    ("head", "sparse", "head must be one of"),
    ("kernel", "flash", "kernel must be one of"),
    ("num_classes", True, "num_classes must be a positive integer, got True"),
    ("num_classes", 5000, r"num_classes must be 1 to 1024 \(ADE20K-Full, the largest benchmark label set, has 847\)"),
    ("channels", 30000, r"channels must be 1 to 2048 \(four times the published 512\), got 30000"),
    ("isa_channels", 4096, r"isa_channels must be 1 to 2048"),
    ("aux_channels", 2.5, r"aux_channels must be a positive integer, got 2.5"),
    ("backbone_width", 1, r"backbone_width must be 2 to 128 \(the deep stem's first convolutions take half of it"),
    ("window_size", 2000, r"window_size must be 1 to 1024 \(a larger block than the largest feature map"),
    ("down_factor", (4.5, 4), r"down_factor must be two positive integers, got \(4.5, 4\)"),
    ("down_factor", "88", r"down_factor must be two positive integers, got '88'"),
    ("align_corners", 1, "align_corners must be True or False, got 1"),
])
def test_bad_values_are_refused_with_the_field_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        ISANetConfig(**{field: value})


def test_a_block_larger_than_any_feature_map_is_refused():
    with pytest.raises(ValueError, match=r"down_factor must be at most 1024 a side \(a larger block than the largest "
                                         r"feature map only pads it with zeros\), got \(3000, 3000\)"):
        ISANetConfig.tiny(down_factor=(3000, 3000))
    assert ISANetConfig.tiny(down_factor=(1024, 1)).down_factor == (1024, 1)
    assert MAX_BLOCK_SIDE == MAX_IMAGE_SIDE // 8  # the largest feature map: the largest image at stride 8


def test_build_model_refuses_zero_classes_instead_of_using_the_zoo_default():
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        isanet.build_model("isanet_r50-d8_4xb2-40k_cityscapes-512x1024", num_classes=0)


def test_replace_names_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown ISANetConfig field\(s\) \['width'\]"):
        ISANetConfig().replace(width=3)


def test_dict_round_trip_is_json():
    config = ISANetConfig.tiny(down_factor=(4, 6), kernel="sdpa")
    values = json.loads(json.dumps(config.to_dict()))
    assert values["down_factor"] == [4, 6]
    assert ISANetConfig.from_dict(values) == config


def test_checkpoint_meta_carries_the_config_and_rebuilds_the_model(tmp_path):
    config = ISANetConfig.tiny(num_classes=3, down_factor=(4, 4), head="dense")
    model = isanet.ISANet(config)
    model.load_state_dict(random_state_dict(model, seed=3))
    path = isanet.save_checkpoint(model, tmp_path / "tiny.pth", meta={"note": "kept"})
    meta = read_checkpoint(path)["meta"]
    assert meta["note"] == "kept" and meta["model_config"] == config.to_dict()
    rebuilt = load_model(path).eval()
    assert rebuilt.config == config
    x = torch.randn(1, 3, 40, 48)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model.eval()(x))


def test_reset_classifier_updates_the_config():
    model = isanet.ISANet(ISANetConfig.tiny())
    model.reset_classifier(7)
    assert model.config.num_classes == 7 and model.num_classes == 7
