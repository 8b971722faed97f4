"""The CUDA check of ``kernel="flex"``: every method's compiled flex form against its masked-dense form, and
ISA's long range timed in row order, in ISA's order and as ISA's reshape + sdpa, on one GPU.

``flex_cuda_check()`` returns the figures as a dict (the GPU check script registers it); on a machine without
CUDA it returns ``{"status": "skipped", ...}``, so the module imports and runs anywhere. Alone:

    python benchmarks/gpu_check_flex.py
"""

from __future__ import annotations

import json

import torch

from isanet.analysis.compare import relative_norm_difference
from isanet.analysis.measure import time_calls
from isanet.analysis.tiles import module_tiles
from isanet.data.sample_checkpoint import random_state_dict
from isanet.models.efficient.base import configure_flex
from isanet.models.efficient.flex import FlexOptions
from isanet.models.efficient.registry import METHODS, build_attention


def _seeded(method: str, kernel: str, channels: int, key_channels: int, size: int) -> torch.nn.Module:
    module = build_attention(method, channels, key_channels, kernel, size)
    module.load_state_dict(random_state_dict(module, 0))
    return module.eval().cuda()


def flex_cuda_check(side: int = 128, channels: int = 512, key_channels: int = 256, size: int = 8,
                    repeats: int = 20) -> dict:
    """Relative error of every method's compiled flex form (fp32, ISA's order) against its matmul form on a
    ``37 x 45`` map (no tile or cell divides it), and milliseconds of ISA on a ``side x side`` map: flex in
    row order, flex in ISA's order, reshape + sdpa; with the tiles skipped in each order."""
    if not torch.cuda.is_available():
        return {"status": "skipped", "reason": "no CUDA device"}
    errors = {}
    x = torch.randn(1, channels, 37, 45, device="cuda")
    with torch.no_grad():
        for method in METHODS:
            reference = _seeded(method, "matmul", channels, key_channels, size)
            module = configure_flex(_seeded(method, "flex", channels, key_channels, size), FlexOptions("group"))
            expected = reference(x)
            errors[method] = relative_norm_difference(module(x), expected)
    x = torch.randn(1, channels, side, side, device="cuda")
    calls, tiles = {}, {}
    for name, kernel, order in (("flex row", "flex", "row"), ("flex group", "flex", "group"),
                                ("reshape sdpa", "sdpa", None)):
        module = _seeded("isa", kernel, channels, key_channels, size)
        if order:
            configure_flex(module, FlexOptions(order))
            computed, _, total = module_tiles(module, side, side)
            tiles[name] = 1 - computed / total
        calls[name] = lambda m=module: m(x)
    with torch.no_grad():
        times = time_calls(calls, repeats, warmup=3, device="cuda")
    return {"status": "ok" if max(errors.values()) <= 1e-4 else "failed", "device": torch.cuda.get_device_name(),
            "torch": torch.__version__, "relative_error": errors, "isa_ms": times, "isa_skipped_tiles": tiles,
            "map": [side, side], "channels": channels}


if __name__ == "__main__":
    print(json.dumps(flex_cuda_check(), indent=1))
