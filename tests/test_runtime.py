"""The runtime resolvers: where a command runs (resolve_device) and in which precision (resolve_precision), and
the one-line warning when a precision cannot run."""

import warnings
from pathlib import Path

import pytest
import torch

from isanet import runtime
from isanet.runtime import autocast, resolve_device, resolve_precision


def test_auto_picks_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected and resolve_device(None) == expected
    assert resolve_device("cpu") == "cpu"


def test_unknown_device_names_the_argument():
    with pytest.raises(ValueError, match=r"^--device 'tpu': use cpu, cuda or auto$"):
        resolve_device("tpu", "--device")


def test_cuda_without_a_gpu_is_refused_with_the_argument_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match=r"^DEVICE cuda: no CUDA device is available to this PyTorch; use cpu$"):
        resolve_device("cuda", "DEVICE")


def test_fp32_is_the_default_and_a_null_context():
    assert resolve_precision(None) == resolve_precision("fp32") == "fp32"
    with autocast("fp32"):
        assert not torch.is_autocast_enabled("cpu")


def test_bf16_on_a_cpu_with_native_bf16_runs_convolutions_in_bf16(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        precision = resolve_precision("bf16", "cpu")
    assert precision == "bf16"
    conv = torch.nn.Conv2d(3, 4, 3)
    with autocast(precision, "cpu"):
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.bfloat16


@pytest.mark.parametrize(("precision", "device", "native", "why"), [
    ("fp16", "cpu", True, "precision fp16 on cpu: fp16 autocast is for CUDA; on CPU use bf16; running in fp32"),
    ("bf16", "cpu", False, "precision bf16 on cpu: this CPU has no native bf16 (AVX-512 BF16 or AMX), where bf16 "
                           "would be slower than fp32; running in fp32"),
])
def test_unsupported_choices_fall_back_to_fp32_with_one_line_saying_why(monkeypatch, precision, device, native, why):
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: native)
    with pytest.warns(UserWarning) as caught:
        assert resolve_precision(precision, device) == "fp32"
    assert [str(warning.message) for warning in caught] == [why]
    assert "\n" not in why


def test_unknown_precision_is_an_error_naming_the_argument():
    with pytest.raises(ValueError, match=r"--precision 'half': use one of fp32, bf16, fp16"):
        resolve_precision("half", "cpu", "--precision")


def test_cpu_bf16_detection_agrees_with_the_cpu_flags():
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    if " avx512_bf16" not in flags and " amx_bf16" not in flags:
        assert not runtime.cpu_has_fast_bf16()
    elif torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX"):
        assert runtime.cpu_has_fast_bf16()
