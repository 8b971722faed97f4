"""Logit parity with OpenMMLab mmsegmentation 1.2.2, replayed from stored reference outputs (no mmseg here).

Each ``tests/fixtures/parity_<tag>.pt`` was written by ``benchmarks/reference_parity.py --save-fixture``: mmseg's
own ``EncoderDecoder`` for a zoo config, loaded (``strict=True``, by mmseg's key names) with
``isanet.data.sample_checkpoint.random_state_dict(model, seed)``, run on a fixed normalised input in whole mode and in
slide mode. Here we rebuild our model with the same seeded weights and require

    max |ours - mmseg| <= 1e-5 * max |mmseg|

for both modes, with our model run in float64 (the references were computed in float64 by mmseg and stored as
float32, so this replay is machine-independent: in float64 the two implementations agree to ~1e-15). The
float32 path is checked too, against a looser 1e-4: float32 rounding differs between CPUs (vector ISA,
threads) and a 101-layer net with random weights amplifies it to ~1e-5 of the largest logit. (The strict
float32-against-float32 comparison, 1e-5, is ``benchmarks/reference_parity.py``'s, on one machine.)

The 65x81 input gives a 9x11 stride-8 feature map, so ISA pads it unevenly (3 top + 4 bottom,
2 left + 3 right); the slide crops (49x65, stride 33x41) overlap and the last window in each axis is clipped
to the image edge, with 7x9 feature maps per crop. The negative controls at the end check that this
comparison does catch a plausible bug (padding on the wrong side, the wrong ``align_corners``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import isanet
from isanet.analysis.compare import max_relative_difference
from isanet.data.sample_checkpoint import random_state_dict
from isanet.io.digest import state_dict_digest

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures").glob("parity_*.pt"))
RTOL = 1e-5  # of the largest reference logit, float64 replay
RTOL_FP32 = 1e-4  # float32 replay (see the module docstring)


def load_fixture(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


_MODELS: dict[tuple[str, int], tuple[torch.nn.Module, str]] = {}


def seeded_model(name: str, seed: int) -> torch.nn.Module:
    return _seeded(name, seed)[0]


def _seeded(name: str, seed: int) -> tuple[torch.nn.Module, str]:
    key = (name, seed)
    if key not in _MODELS:
        model = isanet.build_model(name)
        state = random_state_dict(model, seed=seed)
        model.load_state_dict(state, strict=True)
        _MODELS[key] = model.eval(), state_dict_digest(state)
    return _MODELS[key]


def run(model, fixture: dict, mode: str) -> torch.Tensor:
    if mode == "whole":
        return isanet.predict(model, fixture["input"], mode="whole")
    return isanet.predict(model, fixture["input"], mode="slide", crop_size=tuple(fixture["crop_size"]),
                          stride=tuple(fixture["stride"]))


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """``max |ours - ref| / max |ref|`` (a shape mismatch is a ValueError naming both shapes)."""
    assert torch.isfinite(ours).all(), "non-finite logits"
    return max_relative_difference(ours, ref)


def test_fixtures_cover_both_align_corners_and_both_depths():
    assert FIXTURES, "no tests/fixtures/parity_*.pt: run benchmarks/reference_parity.py --save-fixture"
    fixtures = [load_fixture(path) for path in FIXTURES]
    assert {f["align_corners"] for f in fixtures} == {False, True}
    assert {isanet.get_entry(f["name"]).to_dict()["depth"] for f in fixtures} == {50, 101}


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_logits_match_mmseg(path: Path):
    fixture = load_fixture(path)
    # the zoo must agree with the mmseg config the reference came from
    assert isanet.get_entry(fixture["name"]).to_dict()["align_corners"] == fixture["align_corners"]
    model, digest = _seeded(fixture["name"], fixture["seed"])
    # the weights must be bit for bit those mmseg was run with; otherwise the comparison measures the weights
    assert digest == fixture["weights_sha256"], (
        f"random_state_dict(seed={fixture['seed']}) no longer gives the weights {path.name} was made with "
        "(changed generator, or CPU-dependent random numbers): regenerate the fixtures with "
        "benchmarks/reference_parity.py --save-fixture (see benchmarks/mmseg_env.md)")
    assert model.align_corners == fixture["align_corners"]
    x = fixture["input"]
    assert x.shape[0] == 1 and x.shape[1] == 3 and x.dtype == torch.float32
    for mode in ("whole", "slide"):
        ref = fixture[mode]
        assert ref.shape == (1, model.num_classes, *x.shape[2:])
        assert ref.abs().max() > 1.0 and ref.std() > 0.1, "degenerate reference logits"
    errors = {}
    try:
        for dtype, rtol in ((torch.float64, RTOL), (torch.float32, RTOL_FP32)):
            model.to(dtype)
            replay = dict(fixture, input=x.to(dtype))
            for mode in ("whole", "slide"):
                ours = run(model, replay, mode)
                assert ours.dtype == dtype
                errors[f"{str(dtype)[6:]} {mode}"] = relative_error(ours, fixture[mode]), rtol
    finally:
        model.float()
    failed = {key: f"{rel:.3e} > {rtol:g}" for key, (rel, rtol) in errors.items() if not rel <= rtol}
    assert not failed, f"{fixture['name']}: max|ours-mmseg| / max|mmseg|: {failed} ({fixture['reference']})"
    # slide mode must have exercised something whole mode does not (overlap averaging, edge windows)
    assert relative_error(fixture["slide"], fixture["whole"]) > 100 * RTOL_FP32


def _first_fixture(align_corners: bool) -> dict:
    for path in FIXTURES:
        fixture = load_fixture(path)
        if fixture["align_corners"] == align_corners and isanet.get_entry(fixture["name"]).to_dict()["depth"] == 50:
            return fixture
    pytest.fail(f"no R-50 parity fixture with align_corners={align_corners}")


def test_check_catches_isa_padding_on_the_wrong_side(monkeypatch):
    """The extra padded row/column goes bottom/right in mmseg; putting it top/left must fail the check."""
    from isanet.models.isa import Partition

    fixture = _first_fixture(False)
    model = seeded_model(fixture["name"], fixture["seed"])
    monkeypatch.setattr(Partition, "pad_top", property(lambda p: (p.padded_h - p.height + 1) // 2))
    monkeypatch.setattr(Partition, "pad_left", property(lambda p: (p.padded_w - p.width + 1) // 2))
    assert Partition(9, 11).padding == (3, 2, 4, 3)  # the bug is in place: (left, right, top, bottom)
    assert relative_error(run(model, fixture, "whole"), fixture["whole"]) > 100 * RTOL_FP32


def test_check_catches_wrong_align_corners():
    fixture = _first_fixture(True)
    model = isanet.build_model(fixture["name"], align_corners=False)
    model.load_state_dict(random_state_dict(model, seed=fixture["seed"]), strict=True)
    assert relative_error(run(model.eval(), fixture, "whole"), fixture["whole"]) > 100 * RTOL_FP32
