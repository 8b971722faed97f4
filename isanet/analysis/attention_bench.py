"""The attention bench: every size x kernel x method measured in one run, and its tables.

Methods are dense, ISA and the other efficient attentions of :mod:`isanet.models.efficient_attention` (criss-cross,
axial, window, strided), all on the same projections. They are timed interleaved (a, b, a, b, ...), so that load
from other processes on a shared machine falls on all alike and their ratios stay fair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import nn

from isanet.analysis.measure import (
    Status,
    is_oom,
    measure_footprint,
    module_step,
    oom_measurement,
    time_calls,
)
from isanet.analysis.memory import MemoryCapExceeded
from isanet.models.efficient_attention import build_attention
from isanet.models.layers import ConvBNReLU
from isanet.models.patterns import PatternAttention
from isanet.models.self_attention import Kernel
from isanet.runtime import resolve_device

#: What the bench measures unless asked for more: the pair the rest of the kit is about.
DEFAULT_METHODS: tuple[str, ...] = ("dense", "isa")
#: The authors' efficiency setting (openseg.pytorch ``lib/models/modules/isa_block.py``, its ``__main__``): a
#: 2048-channel R-101 stage-4 map of a 1024x1024 image, a 3x3 conv-BN-ReLU down to 512 channels, then the
#: attention block.
PAPER_IN_CHANNELS, PAPER_CHANNELS, PAPER_ISA_CHANNELS, PAPER_SIZE = 2048, 512, 256, 128


def attention_module(method: str, kernel: Kernel, channels: int = 512, isa_channels: int = 256,
                     down_factor: tuple[int, int] = (8, 8), paper_setting: bool = False) -> nn.Module:
    """The attention part alone (a method of :data:`isanet.models.efficient_attention.METHODS`, with
    ``down_factor`` as ISA's block, the window side or the stride), in eval mode; with ``paper_setting``
    preceded by the authors' 3x3 conv-BN-ReLU from ``PAPER_IN_CHANNELS`` channels."""
    block = build_attention(method, channels, isa_channels, kernel, tuple(down_factor))
    if paper_setting:
        block = nn.Sequential(ConvBNReLU(PAPER_IN_CHANNELS, channels, kernel_size=3, padding=1), block)
    return block.eval()


def computed_with(module: nn.Module) -> str:
    """The kernel the attention inside ``module`` really runs (``"matmul"`` for a pattern sdpa cannot take)."""
    return next(m.computed_with for m in module.modules() if isinstance(m, PatternAttention))


@dataclass
class BenchRow:
    """One measured configuration (a row of ``isanet bench attention --json``)."""

    method: str
    kernel: Kernel
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


def _input_map(shape: tuple[int, int, int, int], seed: int, device: torch.device,
               cap: int | None) -> torch.Tensor | str:
    """The random input map, or (without allocating it) why it does not fit: over the CPU cap, or more than
    the allocator could give."""
    needed = 4 * shape[0] * shape[1] * shape[2] * shape[3]
    if cap is not None and needed > cap:
        return f"the input map alone needs {needed / 2**30:.2f} GiB, over the memory cap of {cap / 2**30:.2f} GiB"
    try:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
        return x.to(device)
    except (MemoryError, RuntimeError) as error:
        if not is_oom(error):
            raise
        return f"the input map ({needed / 2**30:.2f} GiB) could not be allocated: {str(error).splitlines()[0]}"


def bench_attention(sizes: Sequence[tuple[int, int]], *, channels: int = 512, isa_channels: int = 256,
                    down_factor: tuple[int, int] = (8, 8), kernels: Sequence[str] = ("matmul", "sdpa"),
                    methods: Sequence[str] = DEFAULT_METHODS, device: str = "cpu", backward: bool = False,
                    repeats: int = 5, warmup: int = 1, memory_cap_bytes: int | None = None,
                    paper_setting: bool = False, statistic: Literal["median", "mean"] = "median",
                    batch: int = 1, seed: int = 0,
                    progress: Callable[[BenchRow], None] | None = None) -> list[BenchRow]:
    """Measure attention methods (default dense and ISA) on ``batch x channels x h x w`` maps
    (``PAPER_IN_CHANNELS`` input channels with ``paper_setting``), every size x kernel x method, in one run on
    one device."""
    torch_device = torch.device(resolve_device(device))
    in_channels = PAPER_IN_CHANNELS if paper_setting else channels
    cap = memory_cap_bytes if torch_device.type == "cpu" else None
    rows = []
    for height, width in sizes:
        input_bytes = batch * in_channels * height * width * 4  # float32, known before allocating it
        x = _input_map((batch, in_channels, height, width), seed, torch_device, cap)
        for kernel in kernels:
            modules, results = {}, {}
            for method in methods:
                torch.manual_seed(seed)
                modules[method] = attention_module(method, kernel, channels, isa_channels, down_factor,
                                                   paper_setting).to(torch_device)
                if isinstance(x, str):  # the input map alone did not fit: nothing else is run
                    results[method] = oom_measurement(
                        modules[method], torch.empty(batch, in_channels, height, width, device="meta"), backward,
                        MemoryCapExceeded(x))
                    continue
                # the cap is on everything alive during the call: the input and the weights count against it
                resident = input_bytes + _tensor_bytes(list(modules[method].parameters()))
                results[method] = measure_footprint(modules[method], x, backward=backward,
                                                    memory_cap_bytes=None if cap is None else max(cap - resident, 0))
            fits = {} if isinstance(x, str) else {method: module_step(modules[method], x, backward)
                                                  for method in methods if results[method].status == "ok"}
            try:  # dense and ISA timed interleaved, so their ratio is fair on a loaded machine
                for method, elapsed in time_calls(fits, repeats, warmup, torch_device, statistic).items():
                    results[method].time_ms = elapsed
            except (MemoryError, RuntimeError) as error:
                for method in fits:
                    results[method] = oom_measurement(modules[method], x, backward, error)
            for method in methods:
                result, module = results[method], modules.pop(method)
                row = BenchRow(method, kernel, height, width, channels, result.peak_memory_bytes, result.flops,
                               result.time_ms, result.status, isa_channels, tuple(down_factor), str(torch_device),
                               backward, paper_setting,
                               _tensor_bytes(list(module.parameters()) + list(module.buffers())),
                               input_bytes, repeats, statistic, result.error,
                               {"computed_with": computed_with(module)})
                rows.append(row)
                if progress is not None:
                    progress(row)
    return rows


# -------------------------------------------------------------------------------------------- reporting

def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def _ratio(dense: float | None, isa: float | None) -> str:
    return "-" if not dense or not isa else f"{dense / isa:.1f}x"


def _kernel_label(row: BenchRow) -> str:
    """The kernel asked for, with a ``*`` when the method computed its affinities explicitly instead."""
    return row.kernel + ("*" if row.extra.get("computed_with", row.kernel) != row.kernel else "")


def format_rows(rows: Sequence[BenchRow]) -> str:
    """The measured rows as an aligned text table; a footnote explains ``sdpa*`` rows."""
    header = ("method", "kernel", "size", "status", "peak MiB", "GFLOPs", "time ms")
    lines = [header] + [(row.method, _kernel_label(row), f"{row.height}x{row.width}", row.status,
                         _mib(row.peak_memory_bytes), "-" if row.flops is None else f"{row.flops / 1e9:.2f}",
                         "-" if row.time_ms is None else f"{row.time_ms:.1f}") for row in rows]
    explicit = sorted({row.method for row in rows if _kernel_label(row).endswith("*")})
    note = (f"\n* {', '.join(explicit)}: no sdpa form for this pattern; affinities computed explicitly (matmul)"
            if explicit else "")
    return _align(lines) + note


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
