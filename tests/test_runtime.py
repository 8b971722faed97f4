"""resolve_device: the one answer to "where does this run" for every command and notebook."""

import pytest
import torch

from isanet.runtime import resolve_device


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
