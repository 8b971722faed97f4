"""optimize_for_inference: the compiled copy gives eager's logits, compiles each shape once within a bound, leaves
the caller's model alone, and falls back (with one line) where compile is unavailable or fails.

One test compiles with Inductor (the tiny model, one input shape: about 30 s on a free CPU core); the others use
Dynamo's ``eager`` backend, which traces the same way without generating code, to check the wiring quickly."""

import pytest
import torch

import isanet
from isanet.evaluation.inference import Predictor
from isanet.models import optimize
from isanet.models.optimize import BlockedBackbone, CompiledModel, optimize_for_inference
from isanet.models.zoo import TestSettings

pytestmark = pytest.mark.usefixtures("one_thread")


def relative(out: torch.Tensor, reference: torch.Tensor) -> float:
    return ((out - reference).abs().max() / reference.abs().max()).item()


def settings(mode: str = "whole") -> TestSettings:
    windows = {"crop_size": (64, 64), "stride": (48, 48)} if mode == "slide" else {}
    return TestSettings(mode=mode, scale=(128, 128), mean=(0.0,) * 3, std=(1.0,) * 3, align_corners=False,
                        **windows)


def batch(height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.skipif(optimize.compile_unavailable_reason() is not None, reason="torch.compile unavailable here")
def test_inductor_compiled_logits_equal_eager_whole_and_slide_with_one_compile(tiny_model):
    """Slide windows of 64x64 over a 64x112 image are the whole 64x64 input's shape: one compile serves both."""
    lines = []
    fast = optimize_for_inference(tiny_model, log=lines.append)
    assert isinstance(fast, CompiledModel) and fast.backend == "inductor"
    whole, wide = batch(64, 64), batch(64, 112, seed=1)
    compiled = Predictor(fast, settings("whole"))
    assert relative(compiled.logits(whole), isanet.predict(tiny_model, whole)) < 1e-5
    slide = Predictor(fast, settings("slide"))
    reference = isanet.predict(tiny_model, wide, "slide", (64, 64), (48, 48))
    assert relative(slide.logits(wide), reference) < 1e-5
    assert fast.compiled_shapes == [(1, 3, 64, 64)]
    assert len(lines) == 1 and lines[0].startswith("compiled for input 1x3x64x64 (fp32, inductor, weights frozen)")
    assert not torch._inductor.config.freezing  # the option was this compile's, not left set globally


def test_two_sizes_compile_once_each_then_the_bound_runs_uncompiled(tiny_model):
    lines = []
    fast = CompiledModel(tiny_model, backend="eager", max_sizes=2, log=lines.append)
    for height, width in ((64, 64), (80, 96), (64, 64), (96, 96), (96, 112)):
        x = batch(height, width)
        assert relative(fast(x), tiny_model(x)) < 1e-5
    assert fast.compiled_shapes == [(1, 3, 64, 64), (1, 3, 80, 96)]
    assert [line.split(" (")[0] for line in lines[:2]] == ["compiled for input 1x3x64x64",
                                                           "compiled for input 1x3x80x96"]
    assert lines[2:] == ["input 1x3x96x96: 2 input sizes are compiled already; new sizes run uncompiled (resize "
                         "to one test scale to stay compiled)"]  # said once, not for 96x112 again


def test_the_callers_model_is_untouched_and_the_copy_stays_in_eval(tiny_model):
    before = {key: value.clone() for key, value in tiny_model.state_dict().items()}
    tiny_model.train()
    fast = CompiledModel(tiny_model, backend="eager")
    assert tiny_model.training and not fast.train().training
    assert any(isinstance(module, torch.nn.BatchNorm2d) for module in tiny_model.modules())
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in fast.modules())  # folded in the copy
    assert all(torch.equal(before[key], value) for key, value in tiny_model.state_dict().items())


def test_without_a_cxx_compiler_one_warning_and_the_blocked_fallback(tiny_model, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    with pytest.warns(UserWarning) as caught:
        fast = optimize_for_inference(tiny_model)
    assert [str(w.message) for w in caught] == [
        "optimize: Inductor's CPU code needs a C++ compiler and none of no-such-compiler-here is on PATH; using "
        "BatchNorm folding and the oneDNN-prepacked backbone instead"]
    assert not isinstance(fast, CompiledModel)
    assert isinstance(fast.backbone, BlockedBackbone) == optimize.blocked_layout_available()
    x = batch(72, 88)
    with torch.no_grad():
        assert relative(fast(x), tiny_model(x)) < 1e-5


def test_a_failing_compile_warns_once_and_runs_uncompiled(tiny_model):
    def broken(graph, inputs):
        raise RuntimeError("the compiler broke")

    # Dynamo keeps compiled entries per code object across the session; past its cache size limit it runs the
    # frame eagerly without calling any backend, so earlier tests' compiles must not count here.
    torch._dynamo.reset()

    fast = CompiledModel(tiny_model, backend=broken, log=lambda line: None)
    x = batch(64, 64)
    with pytest.warns(UserWarning, match=r"^torch.compile failed \(.*the compiler broke.*\); running uncompiled$"):
        assert relative(fast(x), tiny_model(x)) < 1e-5
    assert fast.failed and fast.compiled_shapes == []
    assert relative(fast(batch(80, 80)), tiny_model(batch(80, 80))) < 1e-5  # no second attempt, no warning


def test_the_predictor_compiles_for_the_resolved_precision(tiny_model, monkeypatch):
    monkeypatch.setattr(optimize, "BACKEND", "eager")
    from isanet import runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bf16"):
        predictor = Predictor(tiny_model, settings(), "bf16", optimize=True)
    assert isinstance(predictor.model, CompiledModel) and predictor.model.precision == "fp32"
    x = batch(64, 80)
    assert relative(predictor.logits(x), isanet.predict(tiny_model, x)) < 1e-5


def test_short_runs_are_told_that_the_compile_will_not_pay():
    from isanet.cli.options import FEW_IMAGES, short_run_note

    assert short_run_note(FEW_IMAGES) is None
    note = short_run_note(1)
    assert note.startswith("note: --optimize compiles first") and "1 image(s) will not pay" in note
    assert "\n" not in note
