"""Notebook 01's fill-in exercise: the checker passes the notebook's own answer and names the first wrong step of a
deliberately broken one (padding on one side, groups in the wrong order, a step that raises, a blank)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from isanet.models.efficient.isa_module import ISAModule
from isanet.notebook.isa_exercise import STEPS, check_steps, steps_report

jupytext = pytest.importorskip("jupytext")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_interlaced_partitions.py"


@pytest.fixture(scope="module")
def answer() -> dict:
    (cell,) = [cell for cell in jupytext.read(NOTEBOOK, fmt="py:percent").cells
               if "from-scratch" in cell.metadata.get("tags", [])]
    namespace = {"torch": torch, "ISAModule": ISAModule}
    exec(compile(cell.source, str(NOTEBOOK), "exec"), namespace)
    return {name: namespace[name] for name in STEPS}


def test_the_notebooks_answer_passes_every_step(answer):
    assert [check.status for check in check_steps(answer)] == ["right"] * 6
    assert steps_report(answer).endswith("all six steps right: put together with the two attentions, they are ISA")
    assert [check.status for check in check_steps(answer, height=8, width=8, down=4)] == ["right"] * 6


def test_a_broken_answer_is_told_which_step_to_fix_first(answer):
    one_sided = {**answer, "pad": lambda x, down: torch.nn.functional.pad(x, (0, 2, 0, 3))}  # all padding bottom/right
    checks = check_steps(one_sided)
    assert checks[0].status == "wrong" and checks[0].detail.startswith("right shape, but ")
    assert checks[0].detail.endswith(f" of {2 * 3 * 16 * 20} values are elsewhere")  # 2 x 3 x 13 x 18 padded to 16 x 20
    assert steps_report(one_sided).endswith("fix step 1 (pad) first")

    def block_major(padded, down):  # groups listed block by block instead of offset by offset
        n, c, big_h, big_w = padded.shape
        lattice = torch.nn.functional.pixel_unshuffle(padded, down)  # n x (c*P*P) x H/P x W/P
        return lattice.reshape(n, c * down * down, -1).transpose(1, 2).reshape(-1, c, big_h // down, big_w // down)

    checks = check_steps({**answer, "to_groups": block_major})
    assert [check.status for check in checks] == ["right", "wrong", "right", "right", "right", "right"]
    assert "values are elsewhere" in checks[1].detail or "shape" in checks[1].detail
    raising = check_steps({**answer, "crop": lambda padded, height, width: padded[:, :, :height, :width, 0]})
    assert raising[5].status == "wrong" and raising[5].detail.startswith("raised IndexError")
    blank = check_steps({**answer, "to_blocks": lambda padded, down: None})
    assert str(blank[3]) == "4. to_blocks: not written yet"
    with pytest.raises(KeyError, match=r"missing \['crop'\]"):
        check_steps({name: step for name, step in answer.items() if name != "crop"})
