"""The attention bench: every size x kernel x method measured in one run, and its tables.

Methods are dense, ISA and the other efficient attentions of :mod:`isanet.models.efficient.registry` (criss-cross,
axial, window, strided), all on the same projections. They are timed interleaved (a, b, a, b, ...), so that load
from other processes on a shared machine falls on all alike and their ratios stay fair. The ``flex`` kernel
gives one row per method and token order (``extra``: the order, the share of tiles skipped, the compile time
of the first call, which the warm-up takes out of the timed calls). Each row is named by the kernel that ran:
``flex`` with a backward pass on a CPU, where the kit computes the same pattern as a masked ``matmul`` over the
whole map (:func:`~isanet.models.efficient.flex.falls_back`), gives ``matmul`` rows marked ``masked`` (one per
method, no token order), measured like the others.

A row whose estimated peak (:func:`estimated_bytes`, from :mod:`isanet.models.footprint`) with its input map and
weights passes the memory cap is reported ``oom`` without being allocated: its module is only planned on the
``meta`` device, so a down factor or a map far too large for the machine costs milliseconds, not swap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import nn

from isanet.analysis.measure import (
    STATISTICS,
    Measurement,
    Status,
    is_oom,
    measure_footprint,
    module_step,
    oom_measurement,
    time_calls,
    time_samples,
)
from isanet.analysis.memory import MemoryCapExceeded
from isanet.analysis.tiles import module_tiles
from isanet.models import footprint
from isanet.models.attention import PATTERN_KERNELS, Kernel
from isanet.models.efficient.base import PatternAttention, configure_flex
from isanet.models.efficient.flex import FlexOptions, Order, falls_back
from isanet.models.efficient.registry import build_attention
from isanet.models.layers import ConvBNReLU
from isanet.runtime import resolve_device
from isanet.text_table import text_table

#: What the bench measures unless asked for more: the pair the rest of the kit is about.
DEFAULT_METHODS: tuple[str, ...] = ("dense", "isa")
#: The authors' efficiency setting (openseg.pytorch ``lib/models/modules/isa_block.py``, its ``__main__``): a
#: 2048-channel R-101 stage-4 map of a 1024x1024 image, a 3x3 conv-BN-ReLU down to 512 channels, then the
#: attention block.
PAPER_IN_CHANNELS, PAPER_CHANNELS, PAPER_ISA_CHANNELS, PAPER_SIZE = 2048, 512, 256, 128


def attention_module(method: str, kernel: Kernel, channels: int = 512, isa_channels: int = 256,
                     down_factor: tuple[int, int] = (8, 8), paper_setting: bool = False) -> nn.Module:
    """The attention part alone (a method of :data:`isanet.models.efficient.registry.METHODS`, with
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
    time_range_ms: tuple[float, float] | None = None  # fastest and slowest of the repeats: the run's spread

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


def estimated_bytes(module: nn.Module, batch: int, in_channels: int, height: int, width: int, backward: bool = False,
                    paper_setting: bool = False) -> int:
    """Peak bytes of one measured call of ``module`` (:func:`attention_module`, on any device, ``meta``
    included) on a ``batch x in_channels x height x width`` map, with what the cap is on: the input map and the
    weights. The attention is :func:`isanet.models.footprint.attention_elements`; the paper setting's 3x3
    conv-BN-ReLU adds its output and BatchNorm's (their gradients, and the input's, with ``backward``)."""
    attention = next(inner for inner in module.modules() if isinstance(inner, PatternAttention))
    pixels = batch * height * width
    conv = 0
    if paper_setting:
        channels = attention.relations()[0].value_project.in_channels
        conv = (6 if backward else 2) * channels * pixels + backward * in_channels * pixels
    return (footprint.FLOAT * (in_channels * pixels + conv
                               + footprint.attention_elements(attention, batch, height, width, backward))
            + _tensor_bytes(list(module.parameters()) + list(module.buffers())))


def over_cap(module: nn.Module, batch: int, in_channels: int, height: int, width: int, backward: bool,
             paper_setting: bool, cap: int | None) -> str | None:
    """Why one call of ``module`` would pass ``cap`` by its estimate (:func:`estimated_bytes`), or None when it
    fits (or there is no cap): a row refused so is never allocated."""
    needed = estimated_bytes(module, batch, in_channels, height, width, backward, paper_setting)
    if cap is None or needed <= cap:
        return None
    return (f"its estimated peak, {needed / 2**30:.2f} GiB counting its input and weights, is over the memory cap "
            f"of {cap / 2**30:.2f} GiB")


def bench_attention(sizes: Sequence[tuple[int, int]], *, channels: int = 512, isa_channels: int = 256,
                    down_factor: tuple[int, int] = (8, 8), kernels: Sequence[str] = ("matmul", "sdpa"),
                    methods: Sequence[str] = DEFAULT_METHODS, device: str = "cpu", backward: bool = False,
                    repeats: int = 5, warmup: int = 1, memory_cap_bytes: int | None = None,
                    paper_setting: bool = False, statistic: Literal["median", "mean"] = "median",
                    batch: int = 1, seed: int = 0, orders: Sequence[Order] = ("row",),
                    progress: Callable[[BenchRow], None] | None = None) -> list[BenchRow]:
    """Measure attention methods (default dense and ISA) on ``batch x channels x h x w`` maps
    (``PAPER_IN_CHANNELS`` input channels with ``paper_setting``), every size x kernel x method (x token order
    for ``flex``), in one run on one device; a kernel that falls back gives rows named by the one that ran."""
    torch_device = torch.device(resolve_device(device))
    in_channels = PAPER_IN_CHANNELS if paper_setting else channels
    cap = memory_cap_bytes if torch_device.type == "cpu" else None
    rows = []
    for height, width in sizes:
        input_bytes = batch * in_channels * height * width * 4  # float32, known before allocating it
        x = _input_map((batch, in_channels, height, width), seed, torch_device, cap)
        for kernel in kernels:
            modules, results, extras, refused = {}, {}, {}, {}
            masked = kernel in PATTERN_KERNELS and falls_back(torch_device.type, backward)
            ran = "matmul" if masked else kernel
            for method, order in _variants(methods, kernel, () if masked else orders):
                with torch.device("meta"):  # the plan: shapes only, to estimate before a weight is allocated
                    planned = attention_module(method, kernel, channels, isa_channels, down_factor, paper_setting)
                refused[method, order] = x if isinstance(x, str) else over_cap(
                    planned, batch, in_channels, height, width, backward, paper_setting, cap)
                torch.manual_seed(seed)
                module = planned if refused[method, order] else attention_module(
                    method, kernel, channels, isa_channels, down_factor, paper_setting).to(torch_device)
                modules[method, order] = module
                extras[method, order] = ({"computed_with": ran, "asked_kernel": kernel, "masked": True} if masked
                                         else {"computed_with": computed_with(module)})
                if order is not None:
                    configure_flex(module, FlexOptions(order))
                    extras[method, order]["order"] = order
                if order is not None and not refused[method, order]:  # a refused map's tiles need its mask
                    computed, needed, total = module_tiles(module, height, width)
                    extras[method, order].update(skipped_tiles=1 - computed / total,
                                                 possible_skipped_tiles=1 - needed / total)
            for variant, module in modules.items():
                if refused[variant]:  # over the cap by its estimate (or the input alone): nothing was allocated
                    results[variant] = (  # FLOPs counted on meta tensors; flex's higher-order op has no meta form
                        Measurement(None, None, None, "oom", refused[variant]) if kernel in PATTERN_KERNELS else
                        oom_measurement(module, torch.empty(batch, in_channels, height, width, device="meta"),
                                        backward, MemoryCapExceeded(refused[variant])))
                    continue
                if variant[1] is not None:  # flex: the first call compiles; its time is not the kernel's
                    extras[variant]["compile_s"] = time_calls({"first": module_step(module, x, backward)}, 1, 0,
                                                              torch_device)["first"] / 1000
                    # memory and FLOP counters cannot look inside flex's higher-order op: time and tiles only
                    results[variant] = Measurement(None, None, None)
                    continue
                # the cap is on everything alive during the call: the input and the weights count against it
                resident = input_bytes + _tensor_bytes(list(module.parameters()))
                results[variant] = measure_footprint(module, x, backward=backward,
                                                     memory_cap_bytes=None if cap is None else max(cap - resident, 0))
            fits = {} if isinstance(x, str) else {variant: module_step(module, x, backward)
                                                  for variant, module in modules.items()
                                                  if results[variant].status == "ok"}
            spreads = {}
            try:  # all variants timed interleaved, so their ratios are fair on a loaded machine
                for variant, samples in time_samples(fits, repeats, warmup, torch_device).items():
                    results[variant].time_ms = STATISTICS[statistic](samples)
                    spreads[variant] = (min(samples), max(samples))
            except (MemoryError, RuntimeError) as error:
                for variant in fits:
                    results[variant] = oom_measurement(modules[variant], x, backward, error)
            for method, order in list(modules):
                result, module = results[method, order], modules.pop((method, order))
                row = BenchRow(method, ran, height, width, channels, result.peak_memory_bytes, result.flops,
                               result.time_ms, result.status, isa_channels, tuple(down_factor), str(torch_device),
                               backward, paper_setting,
                               _tensor_bytes(list(module.parameters()) + list(module.buffers())),
                               input_bytes, repeats, statistic, result.error, extras[method, order],
                               spreads.get((method, order)))
                rows.append(row)
                if progress is not None:
                    progress(row)
    return rows


def _variants(methods: Sequence[str], kernel: str, orders: Sequence[Order]) -> list[tuple[str, Order | None]]:
    """``(method, order)`` of every module one kernel measures: one per token order for a kernel that takes the
    whole map's pattern (flex), whose tiles depend on the order (no ``orders``: one, in no order)."""
    return [(method, order) for method in methods
            for order in (orders if kernel in PATTERN_KERNELS and orders else (None,))]


# -------------------------------------------------------------------------------------------- reporting

def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def _ratio(dense: float | None, isa: float | None) -> str:
    return "-" if not dense or not isa else f"{dense / isa:.1f}x"


def _kernel_name(row: BenchRow) -> str:
    """The kernel that ran, with its token order for ``flex`` (``flex:group``), ``+mask`` for the masked
    ``matmul`` that ran instead of flex."""
    return row.kernel + (f":{row.extra['order']}" if "order" in row.extra else "") + (
        "+mask" if row.extra.get("masked") else "")


def _kernel_label(row: BenchRow) -> str:
    """The kernel asked for, with a ``*`` when the method computed its affinities explicitly instead."""
    return _kernel_name(row) + ("*" if row.extra.get("computed_with", row.kernel) != row.kernel else "")


def _time_cell(row: BenchRow) -> str:
    """The row's time and, when measured, the fastest and slowest repeat: a time is read with its spread."""
    if row.time_ms is None:
        return "-"
    return f"{row.time_ms:.1f}" + ("" if row.time_range_ms is None else
                                   f" ({row.time_range_ms[0]:.1f}-{row.time_range_ms[1]:.1f})")


def format_rows(rows: Sequence[BenchRow]) -> str:
    """The measured rows as an aligned text table; a footnote explains ``sdpa*`` rows. ``flex`` rows add the
    share of tiles skipped (and, after ``/``, the share the pattern would allow) and the compile time."""
    header = ("method", "kernel", "size", "status", "peak MiB", "GFLOPs", "time ms (min-max)", "tiles skipped",
              "compile s")
    lines = [header] + [(row.method, _kernel_label(row), f"{row.height}x{row.width}", row.status,
                         _mib(row.peak_memory_bytes), "-" if row.flops is None else f"{row.flops / 1e9:.2f}",
                         _time_cell(row),
                         f"{row.extra['skipped_tiles']:.1%} / {row.extra['possible_skipped_tiles']:.1%}"
                         if "skipped_tiles" in row.extra else "-",
                         f"{row.extra['compile_s']:.1f}" if "compile_s" in row.extra else "-") for row in rows]
    explicit = sorted({row.method for row in rows if _kernel_label(row).endswith("*")})
    note = (f"\n* {', '.join(explicit)}: no sdpa form for this pattern; affinities computed explicitly (matmul)"
            if explicit else "")
    if any(row.extra.get("masked") for row in rows):
        note += ("\nmatmul+mask: flex has no backward on a CPU; the same pattern ran as matmul with a mask over the "
                 "whole map")
    return text_table(lines) + note


def format_ratios(rows: Sequence[BenchRow]) -> str:
    """Dense / ISA ratios of peak memory, FLOPs and time, for each size and kernel measured with both."""
    by_key = {(_kernel_name(row), row.height, row.width, row.method): row for row in rows}
    lines = [("kernel", "size", "memory dense/isa", "flops dense/isa", "time dense/isa")]
    for kernel, height, width, method in by_key:
        if method != "isa" or (kernel, height, width, "dense") not in by_key:
            continue
        dense, isa = by_key[kernel, height, width, "dense"], by_key[kernel, height, width, "isa"]
        lines.append((kernel, f"{height}x{width}", _ratio(dense.peak_memory_bytes, isa.peak_memory_bytes),
                      _ratio(dense.flops, isa.flops), _ratio(dense.time_ms, isa.time_ms)))
    return text_table(lines)
