"""The explorer's model menu: the shipped teaching model comes first, its random twin beside it, and every entry
is built only when picked."""

from __future__ import annotations

import torch

from isanet.notebook.model_menu import TEACHING_LABEL, TEACHING_NOTE, model_choices
from isanet.notebook.teaching import SHIPPED_CHECKPOINT

ZOO_NAME = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"


def test_the_menu_opens_on_the_teaching_model(tmp_path, one_thread) -> None:
    choices = model_choices(ZOO_NAME, checkpoint_dir=tmp_path)  # an empty folder: no zoo checkpoints
    assert [choice.kind for choice in choices] == ["teaching", "random", "random"]
    teaching, twin = choices[0], choices[1]
    assert teaching.label == TEACHING_LABEL and teaching.path == SHIPPED_CHECKPOINT
    assert "SYNTHETIC" in teaching.note and teaching.note == TEACHING_NOTE
    model = teaching.load()
    assert model.config.head == "isa" and model.config.down_factor == (8, 8)
    assert model.config.depth == 10 and model.config.backbone_width == 16
    random = twin.load()
    assert random.config == model.config, "the random twin must be the same architecture"
    trained, fresh = model.state_dict(), random.state_dict()
    assert not torch.equal(trained["decode_head.conv_seg.weight"], fresh["decode_head.conv_seg.weight"])
    assert ZOO_NAME in choices[2].label


def test_checkpoints_follow_the_teaching_model(tmp_path) -> None:
    chosen = tmp_path / "mine.pth"
    chosen.write_bytes(b"not read until picked")
    choices = model_choices(ZOO_NAME, checkpoint=chosen, checkpoint_dir=tmp_path / "none")
    assert [choice.kind for choice in choices] == ["teaching", "random", "random", "zoo"]
    assert choices[-1].path == chosen and choices[-1].label == "checkpoint: mine.pth"
