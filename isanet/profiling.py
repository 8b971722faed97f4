"""Measuring attention: peak memory, FLOPs and time of a forward (or forward + backward), dense vs ISA.

Why each measure is taken the way it is:

* **Peak memory on CUDA** is the caching allocator's ``max_memory_allocated()`` after
  ``reset_peak_memory_stats()``, minus what was allocated before the call (the input, the weights): the bytes
  the call itself needed at its worst moment.
* **Peak memory on CPU** has no allocator statistics, and process RSS is noisy (allocator caching, other
  threads). :class:`LiveTensorTracker` is a ``TorchDispatchMode`` that sees every aten op run during the call,
  counts the bytes of each new tensor storage the ops create, and subtracts them when the storage is freed
  (a weak reference's callback). Its peak is the largest number of live bytes at any point, intermediates
  freed before the end included. It is deterministic and exact for what it counts (tensor storages; not the
  scratch buffers a kernel allocates and frees inside one op), so the same call always reports the same
  number, and one ``1000 x 1000`` float32 tensor is exactly 4,000,000 bytes.
* **A memory cap** (``cap_bytes``) lets the CPU tracker refuse an op *before* it runs: each op is first run on
  ``meta`` tensors (shapes only) to learn the size of its outputs; if they would lift the live bytes over the
  cap, :class:`MemoryCapExceeded` is raised and the measurement becomes an ``"oom"`` row instead of the
  machine swapping or the process being killed (a dense 256x256 map needs a 16 GiB affinity).
* **FLOPs** come from ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, attention kernels;
  element-wise ops are not counted), during the same call as the memory, so they count the kernels that
  really ran. A row that does not fit in memory is still counted, on a ``meta`` copy of the module (shapes
  only, nothing computed; the same forward count, since a fused kernel and the explicit path do the same two
  matmuls). The CPU fused attention kernel has no formula in the counter; we register the standard one.
* **Time** is the median (or the mean, as the authors report) of ``repeats`` calls after ``warmup`` calls,
  with ``torch.cuda.synchronize()`` around each call on a GPU so the clock sees the kernels, not the launch.
  The bench times dense and ISA interleaved (a, b, a, b, ...), so that load from other processes on a shared
  machine falls on both alike and their ratio stays fair.
"""

from __future__ import annotations

import copy
import statistics
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Literal

import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten, tree_map

from isanet.attention import SelfAttentionBlock
from isanet.heads import ConvBNReLU
from isanet.isa import ISAModule

Status = Literal["ok", "oom"]
aten = torch.ops.aten



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
CPU_OOM_MESSAGES = ("can't allocate memory", "not enough memory", "DefaultCPUAllocator")


class MemoryCapExceeded(MemoryError):
    """An op would have lifted the live tensor bytes over the tracker's cap; it was not run."""


# ----------------------------------------------------------------------------------------------- memory

class LiveTensorTracker(TorchDispatchMode):
    """Counts the bytes of tensor storages created while active and still alive; keeps the maximum.

    Storages that existed before (weights, inputs) are the baseline and are not counted; views and in-place
    ops create no storage and add nothing. ``device`` restricts counting to one device type.
    """

    def __init__(self, device: str | torch.device = "cpu", cap_bytes: int | None = None):
        super().__init__()
        self.device_type = torch.device(device).type
        self.cap_bytes = cap_bytes
        self.live_bytes = 0
        self.peak_bytes = 0
        self._storages: dict[int, tuple[weakref.ref, int]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.cap_bytes is not None:
            needed = self.live_bytes + _new_output_bytes(func, args, kwargs, self.device_type)
            if needed > self.cap_bytes:
                raise MemoryCapExceeded(f"{func} would bring live tensor memory to {needed:,} bytes, over the "
                                        f"cap of {self.cap_bytes:,}")
        out = func(*args, **kwargs)
        # an output sharing an input's storage (a view, an in-place or out= op) is not a new allocation
        inputs = {key for key in map(_storage_key, tree_flatten((args, kwargs))[0]) if key is not None}
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor) and value.device.type == self.device_type:
                self._track(value, inputs)
        return out

    def _track(self, tensor: torch.Tensor, inputs: set[int]) -> None:
        key = _storage_key(tensor)
        if key is None:
            return
        storage = tensor.untyped_storage()
        nbytes = storage.nbytes()
        known = self._storages.get(key)
        if known is None:
            if key in inputs:  # aliases a storage from before the call: the baseline
                return
            self._storages[key] = (weakref.ref(storage, partial(self._freed, key)), nbytes)
            self._add(nbytes)
        elif known[1] != nbytes:  # resized in place
            self._storages[key] = (known[0], nbytes)
            self._add(nbytes - known[1])

    def _add(self, nbytes: int) -> None:
        self.live_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)

    def _freed(self, key: int, _ref: weakref.ref) -> None:
        entry = self._storages.pop(key, None)
        if entry is not None:
            self.live_bytes -= entry[1]


def _storage_key(value: Any) -> int | None:
    """Identity of a tensor's storage (``None`` for non-tensors and tensors without one, e.g. sparse)."""
    if not isinstance(value, torch.Tensor):
        return None
    try:
        return value.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError):
        return None


def _new_output_bytes(func, args, kwargs, device_type: str) -> int:
    """Bytes of the new storages ``func`` would create, learnt by running it on meta tensors (0 if unknown)."""
    inputs: list[torch.Tensor] = []

    def to_meta(value):
        if isinstance(value, torch.Tensor) and value.device.type == device_type:
            meta = torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
            inputs.append(meta)
            return meta
        return value

    try:
        with _disable_current_modes():  # a shape probe, not part of the call: no mode (e.g. a FLOP counter) sees it
            out = func(*tree_map(to_meta, args), **tree_map(to_meta, kwargs))
    except Exception:  # no meta kernel, or an op that needs data: cannot predict, let it run
        return 0
    seen = {t.untyped_storage()._cdata for t in inputs}
    total = 0
    for value in tree_flatten(out)[0]:
        if isinstance(value, torch.Tensor):
            key = value.untyped_storage()._cdata
            if key not in seen:
                seen.add(key)
                total += value.untyped_storage().nbytes()
    return total


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(fn: Callable[[], Any], device: str | torch.device = "cpu", cap_bytes: int | None = None) -> int:
    """Peak bytes ``fn()`` needs over what was allocated before it (see the module docstring for how).

    ``cap_bytes`` applies on CPU only (a GPU reports its own out-of-memory). Raises
    :class:`MemoryCapExceeded` or ``torch.cuda.OutOfMemoryError``; :func:`measure` turns them into rows.
    """
    device = torch.device(device)
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    tracker = LiveTensorTracker(device, cap_bytes)
    with tracker:
        fn()
    return tracker.peak_bytes


# ------------------------------------------------------------------------------------------ flops, time

def count_flops(fn: Callable[[], Any]) -> int:
    """Total FLOPs of ``fn()`` (a multiply-add is 2), as ``FlopCounterMode`` counts them, fused CPU attention
    included. ``fn`` may run on meta tensors: only shapes matter."""
    with flop_counter.FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        fn()
    return counter.get_total_flops()


def time_calls(fns: dict[str, Callable[[], Any]], repeats: int = 10, warmup: int = 2,
               device: str | torch.device = "cpu", statistic: Literal["median", "mean"] = "median") -> dict[str, float]:
    """Milliseconds per call of each function: ``warmup`` untimed rounds, then the median (or mean) of
    ``repeats`` rounds. The calls are interleaved (a, b, a, b, ...) so that load from other processes on a
    shared machine falls on every contender alike, and a ratio of two of them stays fair."""
    device = torch.device(device)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    average = statistics.median if statistic == "median" else statistics.fmean
    return {name: average(values) for name, values in times.items()}


def time_call(fn: Callable[[], Any], repeats: int = 10, warmup: int = 2, device: str | torch.device = "cpu",
              statistic: Literal["median", "mean"] = "median") -> float:
    """Milliseconds per call of ``fn()``: ``warmup`` untimed calls, then the median (or mean) of ``repeats``."""
    return time_calls({"fn": fn}, repeats, warmup, device, statistic)["fn"]


def _is_oom(error: BaseException) -> bool:
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


def _oom(module: nn.Module, x: torch.Tensor, backward: bool, error: BaseException) -> Measurement:
    if not _is_oom(error):
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
        return _oom(module, x, backward, error)
    return Measurement(peak, counter.get_total_flops(), None)


def measure(module: nn.Module, x: torch.Tensor, *, backward: bool = False, repeats: int = 10, warmup: int = 2,
            memory_cap_bytes: int | None = None, statistic: Literal["median", "mean"] = "median") -> Measurement:
    """Peak memory, FLOPs and time of ``module(x)`` (on ``x``'s device); running out of memory is a row."""
    result = measure_footprint(module, x, backward=backward, memory_cap_bytes=memory_cap_bytes)
    if result.status == "ok":
        try:
            result.time_ms = time_call(module_step(module, x, backward), repeats, warmup, x.device, statistic)
        except (MemoryError, RuntimeError) as error:
            return _oom(module, x, backward, error)
    return result


# ------------------------------------------------------------------------------------ dense vs ISA bench

class DenseAttention(nn.Module):
    """One :class:`SelfAttentionBlock` over the whole map with a fixed kernel: the dense counterpart of
    :class:`isanet.isa.ISAModule`, with the same projections, so the two are measured the same way."""

    def __init__(self, channels: int = 512, isa_channels: int = 256, kernel: str = "matmul"):
        super().__init__()
        self.kernel = kernel
        self.relation = SelfAttentionBlock(channels, isa_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relation(x, self.kernel)


METHODS: tuple[str, ...] = ("dense", "isa")
#: The authors' efficiency setting (DESIGN.md): a 2048-channel R-101 stage-4 map of a 1024x1024 image,
#: a 3x3 conv-BN-ReLU down to 512 channels, then the attention block.
PAPER_IN_CHANNELS, PAPER_CHANNELS, PAPER_ISA_CHANNELS, PAPER_SIZE = 2048, 512, 256, 128


def attention_module(method: str, kernel: str, channels: int = 512, isa_channels: int = 256,
                     down_factor: tuple[int, int] = (8, 8), paper_setting: bool = False) -> nn.Module:
    """The attention part alone (``ISAModule`` or :class:`DenseAttention`), in eval mode; with
    ``paper_setting`` preceded by the authors' 3x3 conv-BN-ReLU from ``PAPER_IN_CHANNELS`` channels."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    block = (ISAModule(channels, isa_channels, down_factor, kernel) if method == "isa"
             else DenseAttention(channels, isa_channels, kernel))
    if paper_setting:
        block = nn.Sequential(ConvBNReLU(PAPER_IN_CHANNELS, channels, kernel_size=3, padding=1), block)
    return block.eval()


@dataclass
class BenchRow:
    """One measured configuration (a row of ``isanet bench attention --json``)."""

    method: str
    kernel: str
    height: int
    width: int
    channels: int
    peak_memory_bytes: int | None
    flops: int | None
    time_ms: float | None
    status: Status
    isa_channels: int
    down_factor: tuple[int, int]
    device: str
    backward: bool
    paper_setting: bool
    weight_bytes: int
    input_bytes: int
    repeats: int
    statistic: str
    error: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def paper_memory_mib(self) -> float | None:
        """Memory as the authors report it, ``max_memory_allocated()`` minus the input, in MiB (2**20): the
        call's own peak plus the resident weights."""
        if self.peak_memory_bytes is None:
            return None
        return (self.peak_memory_bytes + self.weight_bytes) / 2**20


def _tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def bench_attention(sizes: Sequence[tuple[int, int]], *, channels: int = 512, isa_channels: int = 256,
                    down_factor: tuple[int, int] = (8, 8), kernels: Sequence[str] = ("matmul", "sdpa"),
                    methods: Sequence[str] = METHODS, device: str = "cpu", backward: bool = False,
                    repeats: int = 5, warmup: int = 1, memory_cap_bytes: int | None = None,
                    paper_setting: bool = False, statistic: Literal["median", "mean"] = "median",
                    batch: int = 1, seed: int = 0,
                    progress: Callable[[BenchRow], None] | None = None) -> list[BenchRow]:
    """Measure dense vs ISA attention on ``batch x channels x h x w`` maps (``PAPER_IN_CHANNELS`` input
    channels with ``paper_setting``), every size x kernel x method, in one run on one device."""
    torch_device = torch.device(device)
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch.cuda.is_available() is False on this machine")
    in_channels = PAPER_IN_CHANNELS if paper_setting else channels
    cap = memory_cap_bytes if torch_device.type == "cpu" else None
    rows = []
    for height, width in sizes:
        x = torch.randn(batch, in_channels, height, width, generator=torch.Generator().manual_seed(seed))
        x = x.to(torch_device)
        for kernel in kernels:
            modules, results = {}, {}
            for method in methods:
                torch.manual_seed(seed)
                modules[method] = attention_module(method, kernel, channels, isa_channels, down_factor,
                                                   paper_setting).to(torch_device)
                results[method] = measure_footprint(modules[method], x, backward=backward, memory_cap_bytes=cap)
            fits = {method: module_step(modules[method], x, backward) for method in methods
                    if results[method].status == "ok"}
            try:  # dense and ISA timed interleaved, so their ratio is fair on a loaded machine
                for method, elapsed in time_calls(fits, repeats, warmup, torch_device, statistic).items():
                    results[method].time_ms = elapsed
            except (MemoryError, RuntimeError) as error:
                for method in fits:
                    results[method] = _oom(modules[method], x, backward, error)
            for method in methods:
                result, module = results[method], modules.pop(method)
                row = BenchRow(method, kernel, height, width, channels, result.peak_memory_bytes, result.flops,
                               result.time_ms, result.status, isa_channels, tuple(down_factor), str(torch_device),
                               backward, paper_setting,
                               _tensor_bytes(list(module.parameters()) + list(module.buffers())),
                               _tensor_bytes([x]), repeats, statistic, result.error)
                rows.append(row)
                if progress is not None:
                    progress(row)
    return rows


# -------------------------------------------------------------------------------------------- reporting

def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def _ratio(dense: float | None, isa: float | None) -> str:
    return "-" if not dense or not isa else f"{dense / isa:.1f}x"


def format_rows(rows: Sequence[BenchRow]) -> str:
    """The measured rows as an aligned text table."""
    header = ("method", "kernel", "size", "status", "peak MiB", "GFLOPs", "time ms")
    lines = [header] + [(row.method, row.kernel, f"{row.height}x{row.width}", row.status,
                         _mib(row.peak_memory_bytes), "-" if row.flops is None else f"{row.flops / 1e9:.2f}",
                         "-" if row.time_ms is None else f"{row.time_ms:.1f}") for row in rows]
    return _align(lines)


def format_ratios(rows: Sequence[BenchRow]) -> str:
    """Dense / ISA ratios of peak memory, FLOPs and time, for each size and kernel measured with both."""
    by_key = {(row.kernel, row.height, row.width, row.method): row for row in rows}
    lines = [("kernel", "size", "memory dense/isa", "flops dense/isa", "time dense/isa")]
    for kernel, height, width, method in by_key:
        if method != "isa" or (kernel, height, width, "dense") not in by_key:
            continue
        dense, isa = by_key[kernel, height, width, "dense"], by_key[kernel, height, width, "isa"]
        lines.append((kernel, f"{height}x{width}", _ratio(dense.peak_memory_bytes, isa.peak_memory_bytes),
                      _ratio(dense.flops, isa.flops), _ratio(dense.time_ms, isa.time_ms)))
    return _align(lines)


def _align(lines: list[tuple[str, ...]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(text)
