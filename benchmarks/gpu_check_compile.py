"""The compiled copy on a GPU: ``isanet.optimize_for_inference`` with the CUDA backend, against eager, in fp32,
bf16 and fp16, as figures for the GPU check script (which registers :func:`compile_cuda_check`).

Importable on a CPU-only machine: nothing touches CUDA until the function runs. Per precision it reports the
compile time (first call), the eager and compiled latencies (median of ``repeats`` interleaved, synchronised),
the speed-up, the compiled logits' max relative difference from eager fp32 and the argmax agreement with it.
"""

from __future__ import annotations

import time

import torch

PRECISIONS = ("fp32", "bf16", "fp16")


def compile_cuda_check(size: tuple[int, int] = (512, 512), depth: int = 50, repeats: int = 5,
                       device: str = "cuda") -> dict:
    """Figures of the compiled R-``depth`` (seeded random weights) on ``device`` at ``size`` whole; raises
    RuntimeError without CUDA (the GPU check records it as a failure that says so)."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("compile_cuda_check needs CUDA, and torch.cuda.is_available() is False")
    from isanet import ISANet, ISANetConfig
    from isanet.analysis.measure import time_calls
    from isanet.data.sample_checkpoint import random_state_dict
    from isanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from isanet.evaluation.inference import Predictor
    from isanet.models.zoo import TestSettings
    from isanet.runtime import resolve_precision

    model = ISANet(ISANetConfig(depth=depth, num_classes=21)).eval()
    model.load_state_dict(random_state_dict(model, seed=0))
    settings = TestSettings(mode="whole", scale=size, mean=IMAGENET_MEAN, std=IMAGENET_STD, align_corners=False)
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0)).to(device)
    figures: dict = {"size": list(size), "depth": depth, "device": torch.cuda.get_device_name(device)}
    reference = Predictor(model, settings, "fp32", device).logits(x)
    for precision in PRECISIONS:
        if resolve_precision(precision, device) != precision:
            figures[precision] = {"skipped": f"{precision} unsupported on this device"}
            continue
        eager = Predictor(model, settings, precision, device)
        compiled = Predictor(model, settings, precision, device, optimize=True)
        started = time.perf_counter()
        out = compiled.logits(x)
        torch.cuda.synchronize(device)
        first_s = time.perf_counter() - started
        ms = time_calls({"eager": lambda e=eager: e.logits(x), "compiled": lambda c=compiled: c.logits(x)},
                        repeats=repeats, warmup=1, device=device)
        figures[precision] = {
            "compile_s": first_s - ms["compiled"] / 1e3, "eager_ms": ms["eager"], "compiled_ms": ms["compiled"],
            "speedup": ms["eager"] / ms["compiled"],
            "max_rel_diff_vs_fp32": ((out - reference).abs().max() / reference.abs().max()).item(),
            "argmax_agreement_vs_fp32": (out.argmax(1) == reference.argmax(1)).float().mean().item()}
    return figures
