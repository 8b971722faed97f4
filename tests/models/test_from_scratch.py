"""Notebook 01's from-scratch ISA (pad, pixel_unshuffle, attend, pixel_shuffle, blocks, attend, crop), taken from
the notebook's own cell, equals the package's ISAModule on the same weights in float64, on sizes its blocks
divide and sizes they do not."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from isanet.data.sample_checkpoint import random_state_dict
from isanet.models.efficient.isa_module import ISAModule

jupytext = pytest.importorskip("jupytext")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_interlaced_partitions.py"


@pytest.fixture(scope="module")
def isa_from_scratch():
    cells = [cell for cell in jupytext.read(NOTEBOOK, fmt="py:percent").cells
             if "from-scratch" in cell.metadata.get("tags", [])]
    assert len(cells) == 1, f"{NOTEBOOK.name}: expected one cell tagged 'from-scratch', found {len(cells)}"
    namespace = {"torch": torch, "ISAModule": ISAModule}
    exec(compile(cells[0].source, str(NOTEBOOK), "exec"), namespace)
    return namespace["isa_from_scratch"]


@pytest.mark.parametrize(("height", "width", "down"), [(8, 8, 4), (13, 18, 4), (7, 5, 3), (4, 4, 1)])
def test_from_scratch_isa_equals_the_module_in_float64(isa_from_scratch, height: int, width: int, down: int) -> None:
    module = ISAModule(6, 4, (down, down))
    module.load_state_dict(random_state_dict(module, seed=height))
    module.eval().double()
    x = torch.randn(2, 6, height, width, dtype=torch.float64, generator=torch.Generator().manual_seed(width))
    with torch.no_grad():
        expected, got = module(x), isa_from_scratch(x, module, down)
    assert got.shape == expected.shape == x.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_a_wrong_regrouping_would_fail(isa_from_scratch) -> None:
    """The check can fail: swapping the two relations (blocks first) gives another output."""
    module = ISAModule(6, 4, (3, 3))
    module.load_state_dict(random_state_dict(module, seed=0))
    module.eval().double()
    x = torch.randn(1, 6, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    swapped = ISAModule(6, 4, (3, 3)).double().eval()
    swapped.global_relation, swapped.local_relation = module.local_relation, module.global_relation
    with torch.no_grad():
        assert not torch.allclose(isa_from_scratch(x, swapped, 3), module(x))
