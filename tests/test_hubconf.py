"""hubconf.py: torch.hub.load(REPO, "isanet", name=..., checkpoint=..., source="local") builds the zoo
architecture and loads the weights exactly; a fine-tuned checkpoint's class count comes from the file."""

from __future__ import annotations

import pytest
import torch

from isanet import build_model, save_checkpoint
from isanet.data.sample_checkpoint import random_state_dict
from isanet.io.checkpoint import CheckpointError
from isanet.models.config import TINY
from tests.conftest import REPO

VOC = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"
pytestmark = pytest.mark.usefixtures("one_thread")


def hub(**kwargs):
    return torch.hub.load(str(REPO), "isanet", source="local", **kwargs)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny VOC model fine-tuned to 3 classes (seeded random weights), saved as isanet train saves."""
    model = build_model(VOC, num_classes=3, **TINY)
    model.load_state_dict(random_state_dict(model, seed=3))
    return save_checkpoint(model, tmp_path_factory.mktemp("hub") / "tiny.pth"), model.state_dict()


def assert_same_weights(model, state):
    assert set(model.state_dict()) == set(state)
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())


def test_name_and_checkpoint_load_the_weights_exactly(tiny_checkpoint):
    path, state = tiny_checkpoint
    model = hub(name=VOC, checkpoint=str(path), **TINY)
    assert model.num_classes == 3 and not model.training and model.config.depth == 18
    assert_same_weights(model, state)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(image)
    assert logits.shape == (1, 3, 32, 32)


def test_checkpoint_alone_uses_the_architecture_in_its_meta(tiny_checkpoint):
    path, state = tiny_checkpoint
    assert_same_weights(hub(checkpoint=str(path)), state)


def test_name_alone_is_the_fresh_zoo_architecture():
    model = hub(name="isanet_r50-d8_512x512_20k_voc12aug", depth=18)  # the legacy 0.x name works too
    assert model.num_classes == 21 and model.training and model.config.depth == 18


def test_bad_calls_are_one_line(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="give name= .* or checkpoint="):
        hub()
    with pytest.raises(CheckpointError, match="does not fit the model"):
        hub(name=VOC, checkpoint=str(tiny_checkpoint[0]))  # an R-50 cannot take the tiny R-18 weights
    with pytest.raises(CheckpointError, match="no such file"):
        hub(name=VOC, checkpoint=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        hub(name=VOC, checkpoint=str(tiny_checkpoint[0]), num_classes=0, **TINY)  # refused, not the file's 3
