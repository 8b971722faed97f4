"""A checkpoint is read once per load: one ``torch.load`` gives the meta, the weights and the digest that every
later step uses, whether the file is kit-written or published, loaded directly, by ``--init`` or by torch.hub."""

from __future__ import annotations

import hashlib

import pytest
import torch

from isanet import build_model
from isanet.data.sample_checkpoint import random_state_dict
from isanet.engine.state import apply_init
from isanet.io.checkpoint import Checkpoint, load_checkpoint, load_model, load_model_for, save_checkpoint
from isanet.models.config import TINY
from tests.conftest import CITYSCAPES_R50, REPO

VOC = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def loads(monkeypatch) -> list[str]:
    """Every ``torch.load`` from here on, as the repr of what it read."""
    calls: list[str] = []
    real_load = torch.load

    def counting_load(source, *args, **kwargs):
        calls.append(repr(source))
        return real_load(source, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    return calls


@pytest.fixture(scope="module")
def kit_file(tmp_path_factory):
    """A tiny VOC model fine-tuned to 3 classes, saved as ``isanet train`` saves (with its config in meta)."""
    model = build_model(VOC, num_classes=3, **TINY)
    model.load_state_dict(random_state_dict(model, seed=4))
    return save_checkpoint(model, tmp_path_factory.mktemp("kit") / "tiny.pth", meta={"iter": 7}), model.state_dict()


@pytest.fixture(scope="module")
def published_file(r50, tmp_path_factory):
    """A Cityscapes R-50 in the published layout: mmseg's meta (class names, no config) and its key names."""
    path = tmp_path_factory.mktemp("published") / "isanet_r50.pth"
    torch.save({"meta": {"dataset_meta": {"classes": [f"c{i}" for i in range(19)]}}, "state_dict": r50.state_dict()},
               path)
    return path, r50.state_dict()


def assert_weights(model, state):
    assert set(model.state_dict()) == set(state)
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())


def test_checkpoint_read_holds_meta_weights_and_the_files_digest(kit_file, loads):
    path, state = kit_file
    checkpoint = Checkpoint.read(path)
    assert len(loads) == 1
    assert checkpoint.path == path and checkpoint.meta["iter"] == 7 and checkpoint.num_classes == 3
    assert checkpoint.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert checkpoint.state_dict.keys() == state.keys()
    with pytest.raises(AttributeError):
        checkpoint.meta = {}  # a value: what was read is what every step sees


def test_kit_written_file_is_read_once(kit_file, loads):
    path, state = kit_file
    model, meta = load_model_for(path, VOC)
    assert len(loads) == 1 and meta["iter"] == 7 and model.num_classes == 3
    assert_weights(model, state)
    assert_weights(load_model(path), state)
    assert len(loads) == 2
    fresh = build_model(VOC, num_classes=3, **TINY)
    assert load_checkpoint(fresh, path).meta["iter"] == 7 and len(loads) == 3


def test_published_file_is_read_once(published_file, loads):
    path, state = published_file
    model, meta = load_model_for(path, CITYSCAPES_R50)
    assert len(loads) == 1 and meta["dataset_meta"]["classes"][0] == "c0"
    assert_weights(model, state)


def test_init_reads_the_file_once(kit_file, loads):
    path, state = kit_file
    model = build_model(VOC, num_classes=5, **TINY)
    report = apply_init(model, path)
    assert len(loads) == 1 and "classifier re-initialised for 5 classes" in report
    assert torch.equal(model.backbone.stem[0].weight, state["backbone.stem.0.weight"])


@pytest.mark.parametrize("name", [VOC, None])
def test_hub_reads_the_file_once(kit_file, loads, name):
    path, state = kit_file
    model = torch.hub.load(str(REPO), "isanet", source="local", name=name, checkpoint=str(path),
                           **(TINY if name else {}))
    assert len(loads) == 1 and model.num_classes == 3
    assert_weights(model, state)
