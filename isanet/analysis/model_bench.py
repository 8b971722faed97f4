"""The whole-model bench: parameters, FLOPs, peak memory, latency, images/s and achieved GFLOP/s of one zoo
model, for several ways of running it (precision, BatchNorm folding, :func:`optimize_for_inference`,
channels-last, ONNX Runtime) side by side.

* **FLOPs** are counted by ``torch.utils.flop_counter.FlopCounterMode`` on a meta copy (shapes only) of the
  exact call that is timed (whole image, or every sliding window). They include the attention matmuls
  (``Q Kᵀ`` and ``A V``, ``aten.bmm``, or the fused kernel): counters that hook modules instead of ops (mmcv's
  ``get_model_complexity_info``, fvcore's defaults) see convolutions and linear layers only, so they report
  ISANet without its attention. The bench prints both totals; the difference is the attention's share.
* **Peak memory** is :func:`isanet.analysis.memory.peak_memory` (live tensor bytes over weights and input);
  not shown for ONNX Runtime and for the blocked (oneDNN) backbone, whose tensors have no PyTorch storage.
* **Time** is the median of ``repeats`` calls after ``warmup``, the variants **interleaved** (a, b, c, a, b, c,
  ...) so load from other processes falls on all alike and their ratios stay fair: :func:`time_model`, the
  whole-model harness the benchmark scripts (``benchmarks/model_speed.py``) time with too.
* **Achieved GFLOP/s** is FLOPs / latency, printed beside the machine's measured peak for the same precision
  (the better of a square matmul and a 3x3 convolution, :func:`peak_gflops`; :func:`kernel_calls` builds these
  probes, and more shapes for a survey): how much of the hardware the model really uses.
* **Agreement** is each variant's argmax against the first variant's, and its max relative logit difference
  (:mod:`isanet.analysis.compare`).
* **Compile** (the ``optimized`` rows, :func:`optimize_for_inference`'s compiled copy): the first call's time
  less one steady call is the compile; divided by the time each image saves against the plain row of the same
  precision it is the **break-even** image count, below which compiling does not pay. Peak memory is not shown
  for these rows: the live-tensor tracker is a dispatch mode, which compiled code does not run under.

Weights are random (seeded) unless a checkpoint is given; the speed does not depend on them, the agreement
does (random weights leave more pixels nearly tied between classes than trained ones).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import flop_counter

from isanet.analysis.compare import max_relative_difference, pixel_agreement
from isanet.analysis.measure import EXTRA_FLOP_FORMULAS, time_calls
from isanet.analysis.memory import peak_memory
from isanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from isanet.evaluation.inference import DEFAULT_MEMORY_CAP, MemoryCap, Predictor, slide_logits
from isanet.models.fold import fold_batchnorm
from isanet.models.optimize import BlockedBackbone, CompiledModel
from isanet.models.zoo import TestSettings
from isanet.runtime import DTYPES
from isanet.text_table import text_table

aten = torch.ops.aten
#: The ops that are attention matmuls in ISANet: every batched matmul is ``Q Kᵀ`` or ``A V`` (the projections
#: and the classifier are convolutions), plus the fused kernels.
ATTENTION_OPS = (aten.bmm, aten._scaled_dot_product_flash_attention_for_cpu,
                 aten._scaled_dot_product_efficient_attention, aten._scaled_dot_product_flash_attention)


#: How a variant's model is prepared: as it is, BatchNorm folded, or :func:`optimize_for_inference`.
PREPARATIONS = ("plain", "folded-bn", "optimized")


@dataclass
class Variant:
    """One way of running the model: ``precision``, a preparation (:data:`PREPARATIONS`), channels-last memory,
    or ONNX Runtime."""

    precision: str = "fp32"
    preparation: str = "plain"
    channels_last: bool = False
    onnx: bool = False

    @property
    def label(self) -> str:
        if self.onnx:
            return "onnxruntime fp32"
        return " ".join([f"pytorch {self.precision}"] + [self.preparation] * (self.preparation != "plain")
                        + ["channels-last"] * self.channels_last)

    def predictor(self, model: nn.Module, settings: TestSettings, device: str,
                  memory_cap: MemoryCap = DEFAULT_MEMORY_CAP) -> Predictor:
        """The :class:`~isanet.evaluation.inference.Predictor` of this way of running ``model``: the precision
        resolved once (an unsupported one warns and runs fp32), the model BatchNorm-folded or optimized (the
        Predictor's :func:`~isanet.models.optimize.optimize_for_inference` copy), in channels-last memory when
        asked (before optimizing, so the optimized copy is made from it); ``memory_cap`` bounds its estimate."""
        prepared = fold_batchnorm(model) if self.preparation == "folded-bn" else model
        if self.channels_last:
            prepared = copy.deepcopy(prepared).to(memory_format=torch.channels_last)
        return Predictor(prepared, settings, self.precision, device, optimize=self.preparation == "optimized",
                         precision_option="--precision", memory_cap=memory_cap)


@dataclass
class VariantRow:
    label: str
    precision: str
    latency_ms: float
    images_per_s: float
    gflops_per_s: float
    peak_gflops_per_s: float
    peak_memory_bytes: int | None
    pixel_agreement: float
    max_rel_diff: float
    compile_s: float | None = None  # first call less a steady one (compiled rows)
    break_even_images: float | None = None  # compile_s / time saved per image against the plain row (inf: none)


@dataclass
class ModelBench:
    name: str
    size: tuple[int, int]
    mode: str
    head: str
    device: str
    threads: int
    params: int
    flops: int
    attention_flops: int
    weights: str
    rows: list[VariantRow] = field(default_factory=list)
    repeats: int = 0
    warmup: int = 0
    clock: str = "wall"

    def to_dict(self) -> dict:
        return asdict(self)


def bench_input(size: tuple[int, int], seed: int = 0, device: str = "cpu") -> torch.Tensor:
    """A deterministic image-like normalised ``1 x 3 x H x W`` batch (a smooth colour field plus noise, ImageNet
    mean/std): values where real inputs sit, so argmax agreement is measured on something like an image."""
    generator = torch.Generator().manual_seed(seed)
    height, width = size
    coarse = torch.rand(1, 3, max(2, height // 8), max(2, width // 8), generator=generator)
    smooth = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    pixels = (0.7 * smooth + 0.3 * torch.rand(1, 3, height, width, generator=generator)) * 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((pixels - mean) / std).to(device)


def kernel_calls(precision: str = "fp32", matmuls: tuple[int, ...] = (1024,),
                 convolutions: tuple[tuple[int, int], ...] = ((512, 32),), channels_last: bool = False,
                 device: str = "cpu") -> dict[str, tuple[Callable[[], torch.Tensor], int]]:
    """Single-kernel probes in ``precision``, by name, each with its FLOPs: an ``n x n`` matmul per ``n`` of
    ``matmuls``, and a 3x3 convolution (``C -> C`` channels, padding 1) on a ``side x side`` map per
    ``(C, side)`` of ``convolutions``, in NCHW and, with ``channels_last``, in channels-last memory too. The
    inputs are seeded, so every run probes the same numbers."""
    generator = torch.Generator().manual_seed(0)
    dtype = DTYPES[precision]
    calls: dict[str, tuple[Callable[[], torch.Tensor], int]] = {}
    for n in matmuls:
        a = torch.randn(n, n, generator=generator).to(device, dtype)
        calls[f"matmul {n}"] = (lambda a=a: a @ a), 2 * n**3
    layouts = {"": torch.contiguous_format} | ({" channels-last": torch.channels_last} if channels_last else {})
    for channels, side in convolutions:
        x = torch.randn(1, channels, side, side, generator=generator).to(device, dtype)
        weight = torch.randn(channels, channels, 3, 3, generator=generator).to(device, dtype)
        for layout, memory_format in layouts.items():
            xl, wl = x.contiguous(memory_format=memory_format), weight.contiguous(memory_format=memory_format)
            name = f"conv3x3 {channels}ch {side}x{side}{layout}"
            calls[name] = (lambda xl=xl, wl=wl: F.conv2d(xl, wl, padding=1)), 2 * channels**2 * 9 * side**2
    return calls


def kernel_gflops(calls: dict[str, tuple[Callable[[], torch.Tensor], int]], repeats: int = 5, warmup: int = 2,
                  device: str = "cpu", clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """GFLOP/s of each of :func:`kernel_calls`' probes: its FLOPs over its median time, timed interleaved."""
    milliseconds = time_calls({name: call for name, (call, _) in calls.items()}, repeats=repeats, warmup=warmup,
                              device=device, clock=clock)
    return {name: calls[name][1] / (value * 1e-3) / 1e9 for name, value in milliseconds.items()}


def peak_gflops(precision: str = "fp32", device: str = "cpu", repeats: int = 5,
                clock: Callable[[], float] = time.perf_counter) -> float:
    """The machine's practical peak in ``precision``: the better GFLOP/s of a 1024 x 1024 matmul and of a 3x3
    convolution (512 -> 512 channels, 32 x 32), median of ``repeats``. Both, because the libraries differ: on
    this project's AMD EPYC, MKL's fp32 matmul reaches ~100 GFLOP/s per core and oneDNN's convolution ~220, so a
    matmul alone would put the model "above the peak"."""
    return max(kernel_gflops(kernel_calls(precision, device=device), repeats, 2, device, clock).values())


def count_model_flops(call: Callable[[nn.Module, torch.Tensor], torch.Tensor], model: nn.Module,
                      x: torch.Tensor) -> tuple[int, int]:
    """``(total, attention matmuls)`` FLOPs of ``call(model, x)``, counted on meta copies (nothing computed)."""
    meta_model = copy.deepcopy(model).to("meta")
    meta_x = torch.empty_like(x, device="meta")
    with flop_counter.FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        call(meta_model, meta_x)
    by_op = counter.get_flop_counts().get("Global", {})
    attention = sum(count for op, count in by_op.items() if getattr(op, "overloadpacket", op) in ATTENTION_OPS)
    return counter.get_total_flops(), attention


@dataclass
class Timed:
    """One contender of :func:`time_model`: what its first call returned, and how long its calls took."""

    output: torch.Tensor  # the first call's, float32 on the CPU: what agreement is measured on
    first_s: float  # the first call, wall clock: a compiled contender compiles in it
    ms: float  # milliseconds per call, the median of the timed rounds

    @property
    def compile_s(self) -> float:
        """The first call less a steady one: a compiled contender's compile time (never below 0)."""
        return max(self.first_s - self.ms * 1e-3, 0.0)


def time_model(calls: dict[str, Callable[[], torch.Tensor]], repeats: int = 5, warmup: int = 1,
               device: str = "cpu", clock: Callable[[], float] = time.perf_counter,
               progress: Callable[[str], None] = lambda message: None) -> dict[str, Timed]:
    """The whole-model speed harness, shared by ``isanet bench model`` and the benchmark scripts: each call once,
    in order, for its output and its first-call time (on the wall clock whatever ``clock`` is: a compile runs
    on threads of its own), then all of them timed **interleaved** (a, b, c, a, b, c, ...:
    :func:`~isanet.analysis.measure.time_calls`, ``warmup`` untimed rounds, then the median of ``repeats``), so
    load from other processes falls on every contender alike and their ratios stay fair. No gradients."""
    outputs, first_s = {}, {}
    with torch.no_grad():
        for label, call in calls.items():
            started = time.perf_counter()
            outputs[label] = call().float().cpu()
            first_s[label] = time.perf_counter() - started
        progress(f"timing {len(calls)} variants interleaved, {repeats} rounds after {warmup} warm-up")
        started = time.perf_counter()
        milliseconds = time_calls(calls, repeats=repeats, warmup=warmup, device=device, clock=clock)
    progress(f"timed in {time.perf_counter() - started:.0f} s")
    return {label: Timed(outputs[label], first_s[label], milliseconds[label]) for label in calls}


def break_even_images(compiled: Timed, plain: Timed) -> float:
    """From how many images compiling pays for itself: the compile over the time each image saves against the
    ``plain`` contender; infinite when the compiled one is no faster."""
    saved_s = (plain.ms - compiled.ms) * 1e-3
    return compiled.compile_s / saved_s if saved_s > 0 else float("inf")


def _onnx_callable(model: nn.Module, size: tuple[int, int], folder: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    from isanet.io.export import export_onnx, onnx_runner, onnx_session

    path = export_onnx(model, folder / "model.onnx", example_size=tuple(max(s, 65) for s in size))
    return onnx_runner(onnx_session(path))


def bench_model(model: nn.Module, name: str, size: tuple[int, int], variants: list[Variant],
                settings: TestSettings, device: str = "cpu", repeats: int = 5, warmup: int = 1,
                weights: str = "random (seed 0)", clock: str = "wall",
                progress: Callable[[str], None] = lambda message: None,
                memory_cap: MemoryCap = DEFAULT_MEMORY_CAP) -> ModelBench:
    """Measure ``model`` (eval mode, on ``device``) on one ``size`` input for every variant, timed interleaved,
    each PyTorch variant through its :class:`~isanet.evaluation.inference.Predictor` with the test ``settings``
    (whole or slide, and the windows) and ``memory_cap``. The first variant is the reference of the agreement
    columns.
    ``clock="cpu"`` times process CPU time (for one thread on a busy machine; see
    :func:`isanet.analysis.measure.time_calls`)."""
    timer = time.process_time if clock == "cpu" else time.perf_counter
    model = model.eval().to(device)
    x = bench_input(size, device=device)
    flops, attention = count_model_flops(  # on meta tensors: nothing allocated, nothing to cap
        lambda m, t: Predictor(m, settings, device="meta", memory_cap=MemoryCap(None)).logits(t), model, x)
    calls: dict[str, Callable[[], torch.Tensor]] = {}
    precisions: dict[str, str] = {}
    uncounted: set[str] = set()  # memory the tracker cannot see: ONNX Runtime's, oneDNN's blocked tensors
    compiled: dict[str, str] = {}  # compiled row -> the plain row of its precision (the break-even reference)
    with contextlib.ExitStack() as stack:
        for variant in variants:
            progress(f"preparing {variant.label}")
            if variant.onnx:
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                run = _onnx_callable(model, size, folder)
                call = ((lambda run=run: run(x.cpu())) if settings.mode == "whole" else
                        (lambda run=run: slide_logits(run, x.cpu(), settings.crop_size, settings.stride)))
                precisions[variant.label] = "fp32"
                uncounted.add(variant.label)
            else:
                predictor = variant.predictor(model, settings, device, memory_cap)
                ran = dataclasses.replace(variant, precision=predictor.precision)  # a row names what ran
                if ran.label in calls:
                    progress(f"{variant.label} runs as {ran.label}: measured once")
                    continue
                batch = x.contiguous(memory_format=torch.channels_last) if variant.channels_last else x
                call = lambda predictor=predictor, batch=batch: predictor.logits(batch)
                precisions[ran.label] = predictor.precision
                if any(isinstance(module, (BlockedBackbone, CompiledModel)) for module in predictor.model.modules()):
                    uncounted.add(ran.label)
                if isinstance(predictor.model, CompiledModel):
                    compiled[ran.label] = Variant(ran.precision, "plain", ran.channels_last).label
                variant = ran
            calls[variant.label] = call
        timed = time_model(calls, repeats, warmup, device, timer, progress)
        progress("measuring peak memory")
        memory = {label: None if label in uncounted else peak_memory(call, device) for label, call in calls.items()}
    peaks = {precision: peak_gflops(precision, device, clock=timer) for precision in set(precisions.values())}
    reference = next(iter(timed.values())).output
    head = getattr(getattr(model, "config", None), "head", "isa")
    result = ModelBench(name, tuple(size), settings.mode, head, device, torch.get_num_threads(),
                        sum(p.numel() for p in model.parameters()), flops, attention, weights, repeats=repeats,
                        warmup=warmup, clock=clock)
    for label, row in timed.items():
        compile_s = break_even = None
        if label in compiled:
            compile_s = row.compile_s
            break_even = break_even_images(row, timed[compiled[label]]) if compiled[label] in timed else None
        result.rows.append(VariantRow(
            label, precisions[label], row.ms, 1e3 / row.ms, flops / (row.ms * 1e-3) / 1e9, peaks[precisions[label]],
            memory[label], pixel_agreement(row.output, reference), max_relative_difference(row.output, reference),
            compile_s, break_even))
    return result


def format_bench(bench: ModelBench) -> str:
    """The header (model, FLOPs with and without attention) and one aligned row per variant."""
    head = [f"{bench.name}: {bench.mode} {bench.size[0]}x{bench.size[1]}, {bench.head} head, {bench.device}, "
            f"{bench.threads} threads, torch {torch.__version__}, weights {bench.weights}",
            f"parameters {bench.params / 1e6:.2f} M; FLOPs {bench.flops / 1e9:.1f} G per image (FlopCounterMode, "
            f"multiply-add = 2), of which attention matmuls {bench.attention_flops / 1e9:.2f} G; a counter that "
            f"skips them reports {(bench.flops - bench.attention_flops) / 1e9:.1f} G",
            f"median of {bench.repeats} interleaved runs after {bench.warmup} warm-up ({bench.clock} clock); "
            "agreement = argmax equal to the first row's"]
    header = ("variant", "latency ms", "images/s", "GFLOP/s", "peak probe", "% peak", "peak MiB", "agree %",
              "max rel diff", "speed-up")
    first = bench.rows[0].latency_ms
    rows = [header] + [(
        row.label, f"{row.latency_ms:.1f}", f"{row.images_per_s:.3f}", f"{row.gflops_per_s:.1f}",
        f"{row.peak_gflops_per_s:.1f}", f"{100 * row.gflops_per_s / row.peak_gflops_per_s:.0f}",
        "-" if row.peak_memory_bytes is None else f"{row.peak_memory_bytes / 2**20:.1f}",
        f"{100 * row.pixel_agreement:.2f}", f"{row.max_rel_diff:.1e}", f"{first / row.latency_ms:.2f}x")
        for row in bench.rows]
    return "\n".join([*head, text_table(rows, right=True),
                      *(compile_line(row) for row in bench.rows if row.compile_s is not None)])


def compile_line(row: VariantRow) -> str:
    """The compile cost of a compiled row, and from how many images on it pays for itself."""
    line = f"{row.label}: compile (first call less a steady one, wall clock) {row.compile_s:.1f} s"
    if row.break_even_images is None:
        return line + " (no plain row of its precision to compare with)"
    if row.break_even_images == float("inf"):
        return line + "; never pays off: no faster than the plain row"
    return line + f"; pays off from {math.ceil(row.break_even_images)} images on (fewer: leave --optimize off)"
