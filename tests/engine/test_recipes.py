"""Named recipes: one registry of frozen entries, the teaching recipe's settings, its meta record, and that both ISA
steps learn under it.

The gradient test is the reason the recipe exists: under the old sample fine-tune (64-px crops, down_factor
(8, 8) on an 8 x 8 feature map) the long-range step has groups of one pixel, a softmax over one key is 1, and
its query/key projections get exactly zero gradient; the recipe must give every projection a gradient.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import isanet
from isanet.data.registry import write_sample_dataset
from isanet.engine.config import TrainConfig, resolve_config
from isanet.engine.recipes import RECIPES, TEACHING, VOC_SAMPLE, get_recipe
from isanet.engine.trainer import Trainer
from isanet.models.config import TINY

pytestmark = pytest.mark.usefixtures("one_thread")
PROJECTIONS = ("global_relation.query_project", "global_relation.key_project",
               "local_relation.query_project", "local_relation.key_project")


@pytest.fixture(scope="module")
def context_root(tmp_path_factory) -> Path:
    return write_sample_dataset("context", tmp_path_factory.mktemp("context") / "set", num_train=4, num_val=2, seed=1)


def one_step_gradients(config: TrainConfig) -> tuple[Trainer, dict[str, float]]:
    """Train one iteration of ``config`` and return the absolute gradient sum of each attention projection."""
    trainer = Trainer(config)
    for _ in trainer.run():
        pass
    head = trainer.state.bare_model.decode_head
    sums = {name: sum(float(p.grad.abs().sum()) for p in head.get_submodule(name).parameters())
            for name in PROJECTIONS}
    trainer.close()
    return trainer, sums


@pytest.mark.parametrize("recipe, down_factor", [("teaching", (8, 8)), ("teaching-one-hop", (4, 4))])
def test_both_isa_steps_get_query_and_key_gradients_under_the_teaching_recipes(context_root, tmp_path, recipe,
                                                                               down_factor):
    config = TrainConfig(data_root=context_root, work_dir=tmp_path / "run", recipe=recipe, iters=1,
                         eval_every=0, progress=False, device="cpu")
    trainer, sums = one_step_gradients(config)
    assert trainer.config.crop_size == TEACHING.settings["crop_size"]
    assert trainer.state.bare_model.config.down_factor == down_factor
    assert all(value > 0 for value in sums.values()), sums


def test_the_old_sample_setting_leaves_the_long_range_step_without_gradient(context_root, tmp_path):
    """The same model on 64-px crops with down_factor (8, 8): an 8 x 8 map, one block, one-pixel groups."""
    config = TrainConfig(data_root=context_root, work_dir=tmp_path / "run", recipe="teaching", iters=1,
                         eval_every=0, progress=False, device="cpu", crop_size=(64, 64),
                         model_overrides={"down_factor": (8, 8)})
    _, sums = one_step_gradients(config)
    assert sums["global_relation.query_project"] == 0 and sums["global_relation.key_project"] == 0
    assert sums["local_relation.query_project"] > 0 and sums["local_relation.key_project"] > 0


def test_the_recipe_is_recorded_and_options_still_override_it(context_root, tmp_path):
    config = TrainConfig(data_root=context_root, work_dir=tmp_path / "run", recipe="teaching", iters=2,
                         save_every=2, eval_every=0, lr=0.03, model_overrides={"head": "dense"}, progress=False,
                         device="cpu")
    trainer = Trainer(config)
    for _ in trainer.run():
        pass
    trainer.close()
    meta = torch.load(tmp_path / "run" / "latest.pth", weights_only=True)["meta"]
    assert meta["recipe"] == "teaching"
    assert meta["config"]["lr"] == 0.03 != TEACHING.lr and meta["config"]["iters"] == 2
    assert meta["config"]["crop_size"] == [160, 160] and meta["config"]["val_scale"] == [160, 160]
    assert meta["config"]["warmup_iters"] == TEACHING.warmup_iters == 100  # the recipe's warm-up, recorded
    assert meta["model_config"]["head"] == "dense" and meta["model_config"]["depth"] == 10
    assert meta["model_config"]["backbone_width"] == 16


def test_a_checkpoint_of_the_teaching_model_is_small(context_root, tmp_path):
    from isanet.models import build_model

    model = build_model("isanet_r50-d8_4xb4-20k_voc12aug-512x512", num_classes=5, **TEACHING.model_overrides)
    size_mb = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20
    assert size_mb < 4, size_mb


def test_an_unknown_recipe_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown recipe 'fast'.*teaching"):
        get_recipe("fast")


def test_every_preset_is_a_frozen_entry_of_the_one_registry():
    assert {name: recipe.name for name, recipe in RECIPES.items()} == {
        "teaching": "teaching", "teaching-one-hop": "teaching-one-hop", "voc-sample": "voc-sample"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        TEACHING.iters = 1
    with pytest.raises(TypeError):
        VOC_SAMPLE.model_overrides["depth"] = 50  # read-only: a run cannot change the preset for the next one
    assert VOC_SAMPLE.settings == dict(iters=300, crop_size=(64, 64), batch_size=4, lr=0.05, resize_scale=(512, 128),
                                       val_scale=(512, 128), save_every=100, eval_every=50)
    assert VOC_SAMPLE.model_overrides == TINY
    # the first teaching model's recipe, kept for the one-hop task: only the schedule and down_factor differ
    one_hop = get_recipe("teaching-one-hop")
    assert {name: value for name, value in one_hop.settings.items() if TEACHING.settings[name] != value} == dict(
        iters=500, lr=0.05, save_every=500)
    assert dict(one_hop.model_overrides) == {**TEACHING.model_overrides, "down_factor": (4, 4)}
    assert "warmup_iters" not in one_hop.settings  # the first model trained without one: the entry's 0


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_a_recipe_named_and_a_recipe_spelled_out_resolve_to_the_same_run(name):
    recipe = get_recipe(name)
    entry = isanet.get_entry(TrainConfig(data_root="d", work_dir="w").name)
    named = resolve_config(TrainConfig(data_root="d", work_dir="w", recipe=name), entry)
    spelled = resolve_config(TrainConfig(data_root="d", work_dir="w", **recipe.config_fields()), entry)
    assert dataclasses.replace(named, recipe=None) == spelled
    assert named.resize_ratio == (recipe.resize_ratio or entry.train.ratio_range)  # unset: the entry's
