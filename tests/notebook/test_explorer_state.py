"""The attention explorer's state without widgets: models run once and cached, a failing model caches nothing,
the query moves in both coordinates, and quiet() marks the explorer's own widget changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from isanet.models import ISANet, ISANetConfig
from isanet.notebook.explorer_state import ExplorerState
from isanet.notebook.model_menu import ModelChoice


@pytest.fixture(scope="module")
def state() -> ExplorerState:
    torch.manual_seed(0)
    model = ISANet(ISANetConfig.tiny(channels=32, isa_channels=16, aux_channels=16)).eval()
    image = np.random.default_rng(0).integers(0, 255, size=(64, 104, 3), dtype=np.uint8)
    runs = []

    def counted() -> ISANet:
        runs.append(1)
        return model

    def broken() -> ISANet:
        raise RuntimeError("no such file")

    state = ExplorerState(image, [ModelChoice("tiny", counted), ModelChoice("broken", broken)])
    state.runs = runs
    return state


def test_a_model_runs_once_and_a_failing_one_caches_nothing(state) -> None:
    state.use_model(0)
    state.use_model(0)
    assert len(state.runs) == 1 and state.capture is state.captures[0] and state.model_label == "tiny"
    with pytest.raises(RuntimeError, match="no such file"):
        state.use_model(1)
    assert 1 not in state.captures and state.current == 0 and state.capture is state.captures[0]


def test_select_in_image_and_feature_coordinates(state) -> None:
    state.use_model(0)
    assert state.select(10, 90) == (10, 90) and state.feature_pixel == state.capture.to_feature(10, 90)
    assert state.result.pixel == state.feature_pixel and state.history[-1] == (10, 90)
    row, col = state.capture.to_image(2, 3)
    assert state.select(2, 3, coords="feature") == (round(row), round(col)) and state.feature_pixel == (2, 3)
    assert state.select(-4, 200, coords="feature", clamp=True) and state.feature_pixel == (0, 12)
    with pytest.raises(ValueError, match=r"outside the image \(64 x 104\)"):
        state.select(64, 0)
    with pytest.raises(ValueError, match="coords must be 'image' or 'feature', got 'cells'"):
        state.select(0, 0, coords="cells")
    assert state.pixel_text().startswith(f"pixel {state.selected_pixel} in the 64×104 image → feature (0, 12) of "
                                         "8×13; block")


def test_quiet_marks_changes_and_nests(state) -> None:
    assert not state.quieted
    with state.quiet():
        assert state.quieted
        with state.quiet():
            assert state.quieted
        assert state.quieted  # the inner block does not end the outer one
    assert not state.quieted
    with pytest.raises(KeyError), state.quiet():
        raise KeyError("an observer failed")
    assert not state.quieted  # an error inside does not leave the observers muted


def test_an_optimized_explorer_runs_the_compiled_backbone_with_the_same_attention(state, monkeypatch) -> None:
    from isanet.analysis import probe

    monkeypatch.setattr("isanet.models.optimize.BACKEND", "eager")  # the wiring; Inductor's: tests/models
    model = state.choices[0].load()
    fast = ExplorerState(state.image, [ModelChoice("tiny", lambda: model)], optimize=True)
    fast.use_model(0)
    assert model.backbone in probe._OPTIMIZED_BACKBONES
    state.use_model(0)
    torch.testing.assert_close(fast.capture.isa.long_range, state.capture.isa.long_range, rtol=0, atol=1e-5)
