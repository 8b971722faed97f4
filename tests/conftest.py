"""Shared fixtures: small models with deterministic weights, and the reference manifests of the zoo's weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import isanet
from isanet.data.sample_checkpoint import random_state_dict

REPO = Path(__file__).resolve().parents[1]
CITYSCAPES_R50 = "isanet_r50-d8_4xb2-40k_cityscapes-512x1024"


def reference_file(name: str) -> Path:
    """A reference manifest: the key names, shapes and dtypes of the published checkpoints, and the zoo table,
    as taken from the OpenMMLab release (kept under tests/fixtures/reference)."""
    return REPO / "tests" / "fixtures" / "reference" / name


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module: small tensors gain nothing from threads, and on a shared 2-core
    machine OpenMP barriers stall them (measured: 86 s -> 9 s for the attention/probe/profiling tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def manifests() -> dict[int, list]:
    return {depth: json.loads(reference_file(f"state_dict_r{depth}.json").read_text())["keys"]
            for depth in (50, 101)}


@pytest.fixture(scope="session")
def r50() -> isanet.ISANet:
    """A Cityscapes R-50 ISANet with seeded random weights, in eval mode (do not train it in a test)."""
    model = isanet.build_model(CITYSCAPES_R50)
    model.load_state_dict(random_state_dict(model, seed=0))
    return model.eval()


@pytest.fixture()
def tiny_model() -> isanet.ISANet:
    """A fast R-18 ISANet with 5 classes and seeded weights, for tests that do not need the published sizes."""
    torch.manual_seed(0)
    model = isanet.ISANet(isanet.ISANetConfig.tiny())
    model.load_state_dict(random_state_dict(model, seed=1))
    return model.eval()
