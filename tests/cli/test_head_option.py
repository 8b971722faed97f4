"""``--head`` on ``isanet train`` and ``isanet bench model``: the names of the head registry, into the model."""

from __future__ import annotations

import pytest

from isanet.cli import build_parser
from isanet.cli.train import config_from_args
from isanet.models.config import TINY
from isanet.models.heads import HEADS

VOC = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"
TRAIN = ["train", VOC, "--data-root", "d", "--work-dir", "w"]


@pytest.mark.parametrize("head", list(HEADS))
def test_train_head_goes_into_the_model_overrides(head: str) -> None:
    config = config_from_args(build_parser().parse_args([*TRAIN, "--tiny", "--head", head]))
    assert config.model_overrides == {**TINY, "head": head}


def test_train_without_head_keeps_the_entry_or_resumed_architecture() -> None:
    assert config_from_args(build_parser().parse_args(TRAIN)).model_overrides is None
    assert config_from_args(build_parser().parse_args([*TRAIN, "--head", "axial"])).model_overrides == {
        "head": "axial"}


@pytest.mark.parametrize("command", [TRAIN, ["bench", "model", VOC]])
def test_unknown_head_is_refused_naming_the_choices(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--head", "linear"])
    assert f"argument --head: invalid choice: 'linear' (choose from {', '.join(map(repr, HEADS))})" in \
        capsys.readouterr().err
