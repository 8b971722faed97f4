"""Measuring one module on one input: peak memory, FLOPs and time of a forward (or forward + backward).

* **Memory** comes from :func:`isanet.analysis.memory.peak_memory` (see there for CPU and CUDA).
* **FLOPs** come from ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, attention kernels;
  element-wise ops are not counted), during the same call as the memory, so they count the kernels that
  really ran. A call that does not fit in memory is still counted, on a ``meta`` copy of the module (shapes
  only, nothing computed; the same forward count, since a fused kernel and the explicit path do the same two
  matmuls). The CPU fused attention kernel has no formula in the counter; we register the standard one.
* **Time** is the median (or the mean, as the authors report) of ``repeats`` calls after ``warmup`` calls,
  with ``torch.cuda.synchronize()`` around each call on a GPU so the clock sees the kernels, not the launch.
  Several contenders are timed interleaved (a, b, a, b, ...), so that load from other processes on a shared
  machine falls on all alike and their ratio stays fair.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.utils import flop_counter

from isanet.analysis.memory import MemoryCapExceeded, peak_memory, synchronize

Status = Literal["ok", "oom"]
aten = torch.ops.aten
CPU_OOM_MESSAGES = ("can't allocate memory", "not enough memory", "DefaultCPUAllocator")



def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                            **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


#: Attention kernels FlopCounterMode does not know; counted as it counts the CUDA fused kernels (two matmuls
#: forward, five backward).
EXTRA_FLOP_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flop,
}
def count_flops(fn: Callable[[], Any]) -> int:
    """Total FLOPs of ``fn()`` (a multiply-add is 2), as ``FlopCounterMode`` counts them, fused CPU attention
    included. ``fn`` may run on meta tensors: only shapes matter."""
    with flop_counter.FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        fn()
    return counter.get_total_flops()


#: How a timing summarises its repeats (``statistic`` of :func:`time_calls` and the benches).
STATISTICS = {"median": statistics.median, "mean": statistics.fmean}


def time_samples(fns: dict[str, Callable[[], Any]], repeats: int = 10, warmup: int = 2,
                 device: str | torch.device = "cpu",
                 clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Milliseconds of every timed call of each function: ``warmup`` untimed rounds, then ``repeats`` rounds. The
    calls are interleaved (a, b, a, b, ...) so that load from other processes on a shared machine falls on every
    contender alike, and a ratio of two of them stays fair. ``clock`` may be ``time.process_time`` (CPU time of
    the process): with one thread it ignores the time other processes hold the core, far steadier on a busy
    machine."""
    device = torch.device(device)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            synchronize(device)
            start = clock()
            fn()
            synchronize(device)
            times[name].append((clock() - start) * 1e3)
    return times


def time_calls(fns: dict[str, Callable[[], Any]], repeats: int = 10, warmup: int = 2,
               device: str | torch.device = "cpu", statistic: Literal["median", "mean"] = "median",
               clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """The median (or mean) of :func:`time_samples` for each function, in milliseconds per call."""
    return {name: STATISTICS[statistic](values)
            for name, values in time_samples(fns, repeats, warmup, device, clock).items()}


def ratio_range(numerator: tuple[float, float], denominator: tuple[float, float]) -> tuple[float, float]:
    """The range a ratio of two timings can take given each one's ``(min, max)`` over its repeats: from the
    fastest numerator over the slowest denominator to the slowest over the fastest."""
    return numerator[0] / denominator[1], numerator[1] / denominator[0]


def ratio_verdict(low: float, high: float) -> str:
    """Whether a ratio's range (:func:`ratio_range`) says above 1, below 1, or cannot tell on this run."""
    if low > 1:
        return "above 1 in every pairing of the repeats"
    if high < 1:
        return "below 1 in every pairing of the repeats"
    return "within the noise of this run (its range spans 1)"


def time_call(fn: Callable[[], Any], repeats: int = 10, warmup: int = 2, device: str | torch.device = "cpu",
              statistic: Literal["median", "mean"] = "median") -> float:
    """Milliseconds per call of ``fn()``: ``warmup`` untimed calls, then the median (or mean) of ``repeats``."""
    return time_calls({"fn": fn}, repeats, warmup, device, statistic)["fn"]


def is_oom(error: BaseException) -> bool:
    if isinstance(error, (MemoryCapExceeded, torch.cuda.OutOfMemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(text in str(error) for text in CPU_OOM_MESSAGES)


# ------------------------------------------------------------------------------------------- one module

@dataclass
class Measurement:
    """Cost of one module on one input. ``status`` is ``"oom"`` when it did not fit (then memory and time
    are ``None``, FLOPs are still counted from shapes, and ``error`` says what ran out)."""

    peak_memory_bytes: int | None
    flops: int | None
    time_ms: float | None
    status: Status = "ok"
    error: str | None = None


def module_step(module: nn.Module, x: torch.Tensor, backward: bool = False) -> Callable[[], Any]:
    """The call being measured: ``module(x)`` under ``no_grad``, or forward + backward of its sum.

    With ``backward`` the input requires a gradient, as the output of the layer before would; parameter
    gradients are cleared first (set to ``None``), so their memory counts inside the call every time.
    """
    if not backward:
        def forward() -> Any:
            with torch.no_grad():
                return module(x)
        return forward
    x = x.detach().requires_grad_(True)

    def forward_backward() -> None:
        module.zero_grad(set_to_none=True)
        module(x).sum().backward()
    return forward_backward


def count_module_flops(module: nn.Module, x: torch.Tensor, backward: bool = False) -> int:
    """FLOPs of :func:`module_step` counted on a meta copy of ``module`` and ``x`` (nothing is computed)."""
    meta_module = copy.deepcopy(module).to("meta")
    meta_x = torch.empty_like(x, device="meta")
    return count_flops(module_step(meta_module, meta_x, backward))


def oom_measurement(module: nn.Module, x: torch.Tensor, backward: bool, error: BaseException) -> Measurement:
    if not is_oom(error):
        raise error
    if x.device.type == "cuda":
        torch.cuda.empty_cache()
    return Measurement(None, count_module_flops(module, x, backward), None, "oom", str(error).splitlines()[0][:300])


def measure_footprint(module: nn.Module, x: torch.Tensor, *, backward: bool = False,
                      memory_cap_bytes: int | None = None) -> Measurement:
    """Peak memory and FLOPs of one call of ``module(x)`` (no time); running out of memory is a row."""
    step = module_step(module, x, backward)
    try:
        # one call measures both: the counter sees the ops the real kernels run (a fused kernel's backward
        # recomputes the scores, and is counted so)
        with flop_counter.FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
            peak = peak_memory(step, x.device, memory_cap_bytes)
    except (MemoryError, RuntimeError) as error:
        return oom_measurement(module, x, backward, error)
    return Measurement(peak, counter.get_total_flops(), None)


def measure(module: nn.Module, x: torch.Tensor, *, backward: bool = False, repeats: int = 10, warmup: int = 2,
            memory_cap_bytes: int | None = None, statistic: Literal["median", "mean"] = "median") -> Measurement:
    """Peak memory, FLOPs and time of ``module(x)`` (on ``x``'s device); running out of memory is a row."""
    result = measure_footprint(module, x, backward=backward, memory_cap_bytes=memory_cap_bytes)
    if result.status == "ok":
        try:
            result.time_ms = time_call(module_step(module, x, backward), repeats, warmup, x.device, statistic)
        except (MemoryError, RuntimeError) as error:
            return oom_measurement(module, x, backward, error)
    return result
