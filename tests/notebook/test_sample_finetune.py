"""The shared sample fine-tune: the checkpoint is trained once and reused, it loads as the model it was, and the
training-step memory measures the dense affinity where it is large."""

from __future__ import annotations

import pytest
import torch

import isanet
from isanet.notebook.sample_finetune import (
    sample_finetune_config,
    training_step_peak_bytes,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_config_is_the_notebook_recipe_with_the_asked_head(tmp_path):
    config = sample_finetune_config(tmp_path / "run", tmp_path, head="dense", quick=True, quiet=True)
    assert config.iters == 20 and config.crop_size == (64, 64) and config.limit_val == 4
    assert config.model_overrides["head"] == "dense" and config.model_overrides["depth"] == 18
    assert (tmp_path / "data" / "samples").is_dir()  # the sample data was written under the given root
    full = sample_finetune_config(tmp_path / "run", tmp_path, quiet=True, lr=0.01)
    assert full.iters == 300 and full.lr == 0.01 and full.limit_val is None


def test_dense_attention_needs_more_memory_than_isa_on_a_large_map():
    # crop 384 -> a 48 x 48 feature map: one dense affinity is 2304 x 2304 floats = 20.25 MiB, kept for backward;
    # ISA's two affinities are 36 blocks of 64 x 64 and 64 groups of 36 x 36 floats (under 1 MiB). At the
    # notebooks' 64 px crops (8 x 8 maps) the backbone sets the peak and the heads tie.
    sizes = {}
    for head in ("none", "isa", "dense"):
        torch.manual_seed(0)
        sizes[head] = training_step_peak_bytes(isanet.ISANet(isanet.ISANetConfig.tiny(head=head)), 1, (384, 384), 5)
    assert sizes["dense"] - sizes["isa"] > 20 * 2**20
    assert sizes["none"] < sizes["isa"]
