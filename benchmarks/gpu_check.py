"""Every CUDA path of the kit, exercised and measured in one command, with one report.

A GPU was lent to this project once (an H100, 2026-12-06: ``benchmarks/gpu_report.md``); AMP's resume and bf16,
DDP over NCCL and the compiled flex kernel still have no passing run on one. Whoever is lent one gets about 15
minutes of device time, start-up included, so everything must run in one short, prepared call (under 6 minutes), on the
machine's own Python from a plain checkout (``PYTHONPATH=.``, no install), and leave a report behind:

    PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/gpu_check.py --device cuda --out OUT_DIR
    PYTHONPATH=. .venv/bin/python benchmarks/gpu_check.py --device cpu --quick     # what CI runs (<= 3 min)

Each check (a function, listed with its time budgets in :data:`CHECKS`) is a list of named parts, each
``pass``, ``fail`` or ``skipped`` with its figures. A check fails when one of its parts fails and is skipped
when all of them are; a part that needs CUDA is ``skipped`` on a CPU (fp16, TF32, NCCL), so ``--device cpu``
runs every other code path and keeps the script from rotting before a GPU arrives. Each check has its own time
budget: a part that would start after it is spent fails as not run, and a command still running when it is
spent is killed; a failure never stops the checks after it.

The commands the kit has (``isanet train``, ``bench attention``, ``bench model``, ``attention``) run as
subprocesses, their stable interface: whole-model speed, eager and compiled, is ``isanet bench model``'s harness
(``isanet.analysis.model_bench.time_model``). The few direct package calls (a forward pass in two precisions,
one attention capture) are in :class:`Package`; every figure comparing two outputs is a measure of
``isanet.analysis.compare``, the one the tests assert with. Writes ``gpu_report.json`` and ``gpu_report.md`` (a
table ready for benchmarks/README.md) into ``--out``, each atomically.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a plain checkout
    sys.path.insert(0, str(REPO))

STATUSES = ("pass", "fail", "skipped")
#: The zoo entries the model bench, the explorer and the training checks name (512 x 512 Pascal VOC models).
R50 = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"
R101 = "isanet_r101-d8_4xb4-20k_voc12aug-512x512"
CUDA_ONLY = "needs CUDA"


class PartFailed(Exception):
    """A part ran but a figure missed its bound; the message says which and by how much."""


class PartSkipped(Exception):
    """A part that cannot run on this machine; the message says why."""


# ------------------------------------------------------------------------------------------- the context

@dataclass
class Context:
    """What every check gets: the device, the mode, a scratch folder, and its own deadline."""

    device: str
    quick: bool
    work: Path
    deadline: float = math.inf
    _samples: Path | None = None

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, argv: list[str], what: str) -> str:
        """Run a command in its own process group, killed when the check's budget is spent; its stdout, or a
        :class:`PartFailed` with the last line of its stderr."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               "PYTHONUNBUFFERED": "1"}
        if not self.cuda:
            env["OMP_NUM_THREADS"] = "1"  # small CPU runs gain nothing from threads on a shared machine
        timeout = self.remaining()
        if timeout <= 0:
            raise PartFailed(f"{what}: not run, the check's budget was spent")
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                   cwd=self.work, start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)  # the whole group: torchrun's workers too
            process.communicate()
            raise PartFailed(f"{what}: killed after {timeout:.0f} s, the check's budget") from None
        if process.returncode != 0:
            lines = [line for line in err.splitlines() if line.strip()] or ["(no message)"]
            raise PartFailed(f"{what}: exit status {process.returncode}: {lines[-1].strip()}")
        return out

    def isanet(self, *args: str, launcher: tuple[str, ...] = ()) -> str:
        """``python -m isanet.cli ARGS`` (optionally under a launcher such as torchrun)."""
        command = [sys.executable, *launcher, "-m", "isanet.cli", *map(str, args)]
        return self.run(command, f"isanet {' '.join(map(str, args[:2]))}")

    def samples(self) -> Path:
        """A small synthetic Pascal VOC sample (``isanet sample-data``), written once and shared by the checks."""
        if self._samples is None:
            self.isanet("sample-data", "voc", "--out", self.work / "samples", "--size", 64, "--num-train", 2,
                        "--num-val", 1)
            self._samples = self.work / "samples" / "VOCdevkit"
        return self._samples


class Parts:
    """The named parts of one check, in order, each with its status and figures."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.items: dict[str, dict] = {}

    def run(self, name: str, body: Callable[[dict], None], cuda_only: bool = False) -> dict:
        """Run ``body(figures)``: it fills ``figures`` as it goes (kept when it then fails) and raises
        :class:`PartFailed` / :class:`PartSkipped`; any other error fails the part with its one line."""
        figures: dict = {}
        if cuda_only and not self.ctx.cuda:
            return self.skip(name, CUDA_ONLY)
        try:
            if self.ctx.remaining() <= 0:
                raise PartFailed("not run: the check's budget was spent")
            body(figures)
            status = "pass"
        except PartSkipped as reason:
            status, figures["reason"] = "skipped", str(reason)
        except PartFailed as problem:
            status, figures["error"] = "fail", str(problem)
        except Exception as error:  # a broken part must not stop the others
            status = "fail"
            figures.update(failure(error))
        self.items[name] = {"status": status, **figures}
        return figures

    def skip(self, name: str, reason: str) -> dict:
        self.items[name] = {"status": "skipped", "reason": reason}
        return self.items[name]

    def status(self) -> str:
        statuses = [part["status"] for part in self.items.values()]
        if "fail" in statuses:
            return "fail"
        return "skipped" if all(status == "skipped" for status in statuses) else "pass"


def failure(error: Exception) -> dict:
    """An unexpected error as figures: its one line, and where it came from."""
    return {"error": f"{type(error).__name__}: {error}".splitlines()[0], "traceback": traceback.format_exc(limit=4)}


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise PartFailed(message)


# ------------------------------------------------------------------------------- direct package calls

class Package:
    """The direct package calls the checks share (no command does these): building a model with the published
    R-50 architecture, one forward pass in a given precision, and one attention capture."""

    @staticmethod
    def model(kernel: str = "matmul", seed: int = 0) -> torch.nn.Module:
        """The published R-50-D8 (21 classes), default-initialised from ``seed``, in eval mode."""
        from isanet import ISANet, ISANetConfig

        torch.manual_seed(seed)
        return ISANet(ISANetConfig(depth=50, num_classes=21, kernel=kernel)).eval()

    @staticmethod
    def batch(quick: bool) -> torch.Tensor:
        """A seeded ``1 x 3 x H x W`` input whose stride-8 map ISA pads unevenly (65x81 -> 9x11 quick,
        385x513 -> 49x65 otherwise), so the padding path is in every comparison."""
        generator = torch.Generator().manual_seed(0)
        size = (65, 81) if quick else (385, 513)
        return torch.randn(1, 3, *size, generator=generator)

    @staticmethod
    def forward(model: torch.nn.Module, batch: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
        """Logits (float32 unless the model is float64), under the precision's autocast, without gradients."""
        from isanet.runtime import autocast

        with torch.no_grad(), autocast(precision, batch.device):
            logits = model(batch)
        return logits if logits.dtype == torch.float64 else logits.float()

    @staticmethod
    def capture_pixel(model: torch.nn.Module, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """The captured logits and the centre pixel's long-range, short-range and composed maps."""
        from isanet.analysis.probe import capture

        captured = capture(model, batch)
        h, w = captured.feature_size
        pixel = captured.pixel(h // 2, w // 2)
        maps = {name: torch.from_numpy(getattr(pixel, name).feature)
                for name in ("long_range", "short_range", "composed")}
        return {"logits": captured.logits.float().cpu(), **maps}


@contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """cuDNN's and cuBLAS's TF32 switches set (PyTorch's default lets convolutions use TF32), then restored."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


# ------------------------------------------------------------------------------------------------ checks

#: float32 against float64, of the largest logit: the parity tests' float32 bound (tests/evaluation).
PARITY_RTOL = 1e-4
#: argmax agreement of an autocast forward with fp32 (random weights, where near-ties are common).
AGREEMENT_PERCENT = 99.0


def parity(ctx: Context, parts: Parts) -> None:
    """Forward on the device in fp32 (TF32 off) for both kernels against the same weights in float64 on the CPU,
    by the parity tests' measure and bound; TF32's error (PyTorch's default for convolutions) as a figure; the
    argmax agreement of bf16 and fp16 autocast with fp32 on the device."""
    from isanet.analysis.compare import max_relative_difference, pixel_agreement
    from isanet.runtime import resolve_precision

    batch = Package.batch(ctx.quick)
    reference = Package.forward(Package.model().double(), batch.double())
    fp32: dict[str, torch.Tensor] = {}

    def kernel_part(kernel: str) -> Callable[[dict], None]:
        def body(figures: dict) -> None:
            model = Package.model(kernel).to(ctx.device)
            started = time.perf_counter()
            with tf32(False):
                fp32[kernel] = Package.forward(model, batch.to(ctx.device))
            figures.update(input=list(batch.shape[2:]), seconds=round(time.perf_counter() - started, 3),
                           max_rel_vs_float64=max_relative_difference(fp32[kernel], reference), bound=PARITY_RTOL)
            expect(figures["max_rel_vs_float64"] <= PARITY_RTOL,
                   f"{kernel}: {figures['max_rel_vs_float64']:.2e} of the largest logit > {PARITY_RTOL:.0e}")
        return body

    for kernel in ("matmul", "sdpa"):
        parts.run(f"fp32 {kernel}", kernel_part(kernel))

    def tf32_body(figures: dict) -> None:
        with tf32(True):
            logits = Package.forward(Package.model().to(ctx.device), batch.to(ctx.device))
        figures.update(max_rel_vs_float64=max_relative_difference(logits, reference),
                       agreement_percent=100 * pixel_agreement(logits, reference))

    parts.run("tf32 matmul", tf32_body, cuda_only=True)

    def precision_part(precision: str) -> Callable[[dict], None]:
        def body(figures: dict) -> None:
            if "matmul" not in fp32:
                raise PartFailed("no fp32 logits to compare with (fp32 matmul failed)")
            if resolve_precision(precision, ctx.device) != precision:
                raise PartSkipped(f"{precision} does not run on this {ctx.device} (it would fall back to fp32)")
            logits = Package.forward(Package.model().to(ctx.device), batch.to(ctx.device), precision)
            figures.update(agreement_percent=100 * pixel_agreement(logits, fp32["matmul"]),
                           max_rel_vs_fp32=max_relative_difference(logits, fp32["matmul"]), bound=AGREEMENT_PERCENT)
            expect(figures["agreement_percent"] >= AGREEMENT_PERCENT,
                   f"{precision}: {figures['agreement_percent']:.2f} % of pixels agree with fp32, "
                   f"< {AGREEMENT_PERCENT} %")
        return body

    parts.run("bf16 agreement", precision_part("bf16"))
    parts.run("fp16 agreement", precision_part("fp16"), cuda_only=True)


#: Losses of two runs that should be the same computation: bitwise on a CPU; on CUDA the autotuned cuDNN
#: kernels (``cudnn.benchmark``, the recipe's setting) are not bitwise reproducible.
SAME_RUN_RTOL = {"cpu": 1e-6, "cuda": 1e-2}


def train_args(ctx: Context, work_dir: Path, iters: int, precision: str, save_every: int) -> list:
    """``isanet train`` on the shared sample: the tiny R-18 on 64x64 crops, ``iters`` iterations, no
    evaluation; lr 0.05 so that a few steps from random weights visibly lower the loss."""
    return [*("train", R50, "--data-root", ctx.samples(), "--work-dir", work_dir, "--tiny"),
            *("--iters", iters, "--crop", 64, 64, "--scale", 256, 64, "--batch-size", 2, "--lr", 0.05),
            *("--save-every", save_every, "--eval-every", 0, "--precision", precision, "--device", ctx.device),
            "--no-progress"]


def losses(work_dir: Path) -> list[float]:
    """The per-iteration losses of a finished run (its ``log.jsonl``, one JSON object per iteration)."""
    lines = (work_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()
    return [float(record["loss"]) for record in map(json.loads, lines) if "loss" in record]


def train_iters(ctx: Context) -> int:
    return 6 if ctx.quick else 12


def amp(ctx: Context, parts: Parts) -> None:
    """A few training steps in fp16 (+ GradScaler) and in bf16: every loss finite, the last third's mean below
    the first third's, then the run resumed from its half-way checkpoint (as after a kill) equal to the
    uninterrupted run."""
    from isanet.analysis.compare import max_relative_series_difference
    from isanet.runtime import resolve_precision

    iters = train_iters(ctx)

    def precision_part(precision: str) -> Callable[[dict], None]:
        def body(figures: dict) -> None:
            if resolve_precision(precision, ctx.device) != precision:
                raise PartSkipped(f"{precision} does not run on this {ctx.device} (it would train in fp32)")
            whole, resumed = ctx.work / f"train_{precision}", ctx.work / f"resume_{precision}"
            started = time.perf_counter()
            ctx.isanet(*train_args(ctx, whole, iters, precision, iters // 2))
            figures["seconds_per_run"] = round(time.perf_counter() - started, 2)
            values = losses(whole)
            third = max(1, iters // 3)
            figures.update(losses=[round(value, 4) for value in values], first_third_mean=sum(values[:third]) / third,
                           last_third_mean=sum(values[-third:]) / third)
            expect(len(values) == iters and all(map(math.isfinite, values)), f"{precision}: losses {values}")
            expect(figures["last_third_mean"] < figures["first_third_mean"],
                   f"{precision}: the loss did not decrease ({figures['first_third_mean']:.3f} -> "
                   f"{figures['last_third_mean']:.3f})")
            resumed.mkdir()  # the state a kill right after the half-way checkpoint leaves behind
            shutil.copy(whole / f"iter_{iters // 2}.pth", resumed)
            shutil.copy(whole / "log.jsonl", resumed)
            ctx.isanet(*train_args(ctx, resumed, iters, precision, iters // 2), "--resume")
            again = losses(resumed)
            figures["resume_max_rel_diff"] = max_relative_series_difference(again, values)
            bound = SAME_RUN_RTOL[ctx.device]
            expect(figures["resume_max_rel_diff"] <= bound,
                   f"{precision}: the resumed run's losses differ by {figures['resume_max_rel_diff']:.2e} > {bound}")
        return body

    parts.run("fp16 + GradScaler", precision_part("fp16"), cuda_only=True)
    parts.run("bf16", precision_part("bf16"))


def ddp(ctx: Context, parts: Parts) -> None:
    """``torchrun --nproc_per_node 1`` (NCCL on CUDA, gloo on a CPU) for a few fp32 steps, equal to the same
    steps in a plain process."""
    from isanet.analysis.compare import max_relative_series_difference

    iters = train_iters(ctx)
    single = {}

    def single_body(figures: dict) -> None:
        ctx.isanet(*train_args(ctx, ctx.work / "single", iters, "fp32", iters))
        single["losses"] = losses(ctx.work / "single")
        figures["losses"] = [round(value, 4) for value in single["losses"]]

    def torchrun_body(figures: dict) -> None:
        if "losses" not in single:
            raise PartFailed("no single-process run to compare with")
        launcher = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1")
        ctx.isanet(*train_args(ctx, ctx.work / "ddp", iters, "fp32", iters), launcher=launcher)
        values = losses(ctx.work / "ddp")
        bound = SAME_RUN_RTOL[ctx.device]
        figures.update(backend="nccl" if ctx.cuda else "gloo", losses=[round(value, 4) for value in values],
                       max_rel_diff=max_relative_series_difference(values, single["losses"]), bound=bound)
        expect(figures["max_rel_diff"] <= bound, f"DDP losses differ by {figures['max_rel_diff']:.2e} > {bound}")

    parts.run("single process", single_body)
    parts.run("torchrun nccl" if ctx.cuda else "torchrun gloo", torchrun_body)


def attention_rows(rows: list[dict]) -> dict:
    """The bench's JSON rows as ``method kernel HxW -> peak MiB, as the authors count it, GFLOPs, ms``. The
    authors' count (openseg.pytorch ``isa_block.py``) is ``max_memory_allocated()`` minus the input, which
    holds the weights too: our peak over the baseline plus the weights' bytes."""
    def authors(row: dict) -> float | None:
        peak = row["peak_memory_bytes"]
        return None if peak is None else _mib(peak + row["weight_bytes"])

    return {f"{row['method']} {row['kernel']} {row['height']}x{row['width']}":
            dict(status=row["status"], peak_mib=_mib(row["peak_memory_bytes"]), authors_mib=authors(row),
                 gflops=_giga(row["flops"]), time_ms=row["time_ms"]) for row in rows}


def _mib(value: float | None) -> float | None:
    return None if value is None else round(value / 2**20, 2)


def _giga(value: float | None) -> float | None:
    return None if value is None else round(value / 1e9, 3)


def attention(ctx: Context, parts: Parts) -> None:
    """``isanet bench attention`` on the device: dense vs ISA, both kernels, at 64² and 128² (16² and 32² in
    quick mode, on 64 channels), forward and forward + backward, and the authors' setting (on a GPU their
    protocol: 10 warm-up runs, the mean of 100). Every row must run; at 128² ISA's peak must be below dense's
    (matmul), the memory claim of the paper (at quick mode's small maps the projections' activations dominate)."""
    sizes = ("16", "32") if ctx.quick else ("64", "128")
    speed = ("--repeats", 1, "--warmup", 0, "--threads", 1, "--channels", 64, "--isa-channels", 32) \
        if ctx.quick else ("--repeats", 10, "--warmup", 3)

    def bench(name: str, *options) -> Callable[[dict], None]:
        def body(figures: dict) -> None:
            out = ctx.work / f"attention_{name}.json"
            ctx.isanet("bench", "attention", "--device", ctx.device, "--kernels", "matmul", "sdpa", *options,
                       "--json", out)
            rows = json.loads(out.read_text(encoding="utf-8"))
            figures["rows"] = attention_rows(rows)
            broken = [key for key, row in figures["rows"].items() if row["status"] != "ok"]
            expect(not broken, f"rows not ok: {', '.join(broken)}")
            if name != "paper" and not ctx.quick:
                side = sizes[-1]
                dense, isa = (figures["rows"][f"{method} matmul {side}x{side}"]["peak_mib"]
                              for method in ("dense", "isa"))
                figures["dense_over_isa_peak_matmul"] = round(dense / isa, 2)
                expect(isa < dense, f"ISA's peak {isa} MiB is not below dense's {dense} MiB at {side}x{side}")
        return body

    parts.run("forward", bench("forward", "--sizes", *sizes, *speed))
    parts.run("forward+backward", bench("backward", "--sizes", *sizes, "--backward", *speed))
    paper = ("--sizes", "16", "--repeats", 1, "--warmup", 0, "--threads", 1) if ctx.quick else ()
    parts.run("paper setting", bench("paper", "--paper-setting", *paper))


def model_rows(data: dict) -> dict[str, dict]:
    """``bench model``'s JSON rows by variant (``fp32``, ``bf16 optimized``, ...): latency, images/s, GFLOP/s,
    peak MiB, agreement with the first row (fp32), and a compiled row's compile seconds and break-even images."""
    rows = {}
    for row in data["rows"]:
        figures = dict(latency_ms=row["latency_ms"], images_per_s=row["images_per_s"],
                       gflops_per_s=row["gflops_per_s"], peak_mib=_mib(row["peak_memory_bytes"]),
                       agreement_percent=100.0 * row["pixel_agreement"], max_rel_diff=row["max_rel_diff"])
        if row["compile_s"] is not None:
            figures.update(compile_s=row["compile_s"], break_even_images=row["break_even_images"])
        rows[row["label"].removeprefix("pytorch ")] = figures
    return rows


def bench_model_part(ctx: Context, tag: str, name: str, precisions: list[str], *options) -> Callable[[dict], None]:
    """A part running ``isanet bench model NAME`` on the device, one row per precision (and with ``--optimize``
    a compiled row per precision too); its figures are the model's size, parameters, GFLOPs and rows."""
    wanted = precisions + [f"{precision} optimized" for precision in precisions if "--optimize" in options]

    def body(figures: dict) -> None:
        out = ctx.work / f"model_{tag}.json"
        ctx.isanet("bench", "model", name, "--device", ctx.device, "--precision", *precisions, *options,
                   "--json", out)
        data = json.loads(out.read_text(encoding="utf-8"))
        figures.update(size=data["size"], params_m=round(data["params"] / 1e6, 2), gflops=_giga(data["flops"]),
                       rows=model_rows(data))
        missing = [row for row in wanted if row not in figures["rows"]]
        expect(not missing, f"no row for {', '.join(missing)}")
    return body


def model(ctx: Context, parts: Parts) -> None:
    """``isanet bench model`` for R-50 and R-101 at 512 x 512 (32 x 32 in quick mode) in fp32, bf16 and fp16,
    timed interleaved: latency, images/s, GFLOP/s, peak memory, argmax agreement with fp32."""
    precisions = ["fp32", "bf16"] + (["fp16"] if ctx.cuda else [])
    size = ("32", "32") if ctx.quick else ("512", "512")
    speed = ("--repeats", 1, "--warmup", 0, "--threads", 1) if ctx.quick else ("--repeats", 10, "--warmup", 3)
    for label, name in (("R-50", R50), ("R-101", R101)):
        parts.run(label, bench_model_part(ctx, label, name, precisions, "--size", *size, *speed))
        if not ctx.cuda:
            parts.skip(f"{label} fp16", CUDA_ONLY)


#: Largest difference of one pixel's attention weights (each map sums to at most 1) between devices.
CAPTURE_ATOL = 1e-4


def explorer(ctx: Context, parts: Parts) -> None:
    """The attention capture on the device: ``isanet attention`` writes its page from a capture there, and the
    centre pixel's captured maps and the logits equal the CPU's."""
    from isanet.analysis.compare import max_abs_difference, max_relative_difference

    width = 64 if ctx.quick else 512

    def page_body(figures: dict) -> None:
        image = next((ctx.samples() / "VOC2012" / "JPEGImages").glob("*.jpg"))
        page = ctx.work / "explorer.html"
        started = time.perf_counter()
        ctx.isanet("attention", image, "--model", R50, "--width", width, "--device", ctx.device, "--out", page)
        figures.update(width=width, seconds=round(time.perf_counter() - started, 2),
                       page_kb=round(page.stat().st_size / 1e3, 1))

    def agreement_body(figures: dict) -> None:
        batch = Package.batch(ctx.quick)
        on_cpu = Package.capture_pixel(Package.model(), batch)
        on_device = Package.capture_pixel(Package.model().to(ctx.device), batch.to(ctx.device))
        figures.update({f"{name}_max_abs_diff": max_abs_difference(on_device[name], on_cpu[name])
                        for name in ("long_range", "short_range", "composed")},
                       logits_max_rel=max_relative_difference(on_device["logits"], on_cpu["logits"]),
                       bound=CAPTURE_ATOL)
        worst = max(figures[f"{name}_max_abs_diff"] for name in ("long_range", "short_range", "composed"))
        expect(worst <= CAPTURE_ATOL, f"captured weights differ from the CPU's by {worst:.2e} > {CAPTURE_ATOL}")

    parts.run("page", page_body)
    parts.run("capture vs cpu", agreement_body, cuda_only=True)


def script_part(module: str, function: str, **options) -> Callable[[dict], None]:
    """A part whose figures come from ``function(**options)`` of the script ``benchmarks/MODULE.py`` (the CUDA
    checks a feature keeps beside its own code); a ``{"status": "skipped"}`` answer skips the part."""
    def body(figures: dict) -> None:
        spec = importlib.util.spec_from_file_location(module, REPO / "benchmarks" / f"{module}.py")
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
        result = getattr(script, function)(**options)
        if result.get("status") == "skipped":
            raise PartSkipped(result.get("reason", "skipped"))
        figures.update(result)
    return body


def flex(ctx: Context, parts: Parts) -> None:
    """``kernel="flex"``: every method's eager flex form against its ``matmul`` form on a small map the cells do
    not divide (any device), and on CUDA the compiled kernel's errors and ISA's times in row order, in ISA's
    order and as reshape + sdpa (``benchmarks/gpu_check_flex.py``)."""
    def eager_body(figures: dict) -> None:
        from isanet.analysis.compare import max_relative_difference
        from isanet.data.sample_checkpoint import random_state_dict
        from isanet.models.efficient import flex as flex_kernels
        from isanet.models.efficient.registry import METHODS, build_attention

        x = torch.randn(1, 16, 9, 11, dtype=torch.float64)  # 1 x C x h x w, 9 x 11: no 4 x 4 cell divides it
        worst = 0.0
        with flex_kernels.compiled(False), torch.no_grad():
            for method in METHODS:
                outputs = {}
                for kernel in ("matmul", "flex"):
                    module = build_attention(method, 16, 8, kernel, 4).double().eval()
                    module.load_state_dict(random_state_dict(module, 0))
                    outputs[kernel] = module(x)
                worst = max(worst, max_relative_difference(outputs["flex"], outputs["matmul"]))
        figures.update(methods=len(METHODS), max_rel_vs_matmul=worst, bound=1e-10)
        expect(worst <= 1e-10, f"eager flex differs from matmul by {worst:.2e} > 1e-10 (float64)")

    parts.run("eager flex vs matmul", eager_body)
    parts.run("compiled flex on cuda", script_part("gpu_check_flex", "flex_cuda_check", repeats=5 if ctx.quick else 20),
              cuda_only=True)


def compiled_inference(ctx: Context, parts: Parts) -> None:
    """Compiled inference (``isanet.optimize_for_inference``): the compiled path's wiring on any device with
    Dynamo's cheap ``eager`` backend (equal logits), and on CUDA ``isanet bench model --optimize`` for R-50 at
    512 x 512 in fp32, bf16 and fp16: Inductor with freezing against eager, each compile, its break-even image
    count, and the compiled logits' agreement with eager fp32."""
    def wiring_body(figures: dict) -> None:
        from isanet import ISANet, ISANetConfig
        from isanet.analysis.compare import max_relative_difference
        from isanet.models import optimize

        torch.manual_seed(0)
        model = ISANet(ISANetConfig.tiny()).eval()
        batch = torch.randn(1, 3, 64, 64)
        backend, optimize.BACKEND = optimize.BACKEND, "eager"  # the wiring, not Inductor's code generation
        try:
            with torch.no_grad():
                difference = max_relative_difference(optimize.optimize_for_inference(model)(batch), model(batch))
        finally:
            optimize.BACKEND = backend
        figures.update(backend="eager", max_rel_vs_eager=difference, bound=1e-4)
        expect(difference <= 1e-4, f"the compiled path differs from eager by {difference:.2e} > 1e-4")

    parts.run("compiled path wiring", wiring_body)
    speed = ("--repeats", 3 if ctx.quick else 5, "--warmup", 1)
    parts.run("inductor on cuda", bench_model_part(ctx, "compiled", R50, ["fp32", "bf16", "fp16"], "--size", 512, 512,
                                                   "--optimize", *speed), cuda_only=True)


#: The whole run on a GPU stays within this many seconds (the budgets below add up to it at most): one call on a
#: lent machine, with time left to rerun a failed check.
GPU_SECONDS = 340
#: The checks in report order, each with its time budget in seconds on a GPU and in ``--quick`` mode (CPU). The GPU
#: budgets are what the first run on an H100 (2026-12-06, torch 2.11) took, with room: one ``isanet train`` of 12
#: tiny steps took 21 s there (start-up: CUDA, cuDNN), and amp runs four of them, ddp two; the compiled flex check
#: compiles each method's kernel.
CHECKS: dict[str, tuple[Callable[[Context, Parts], None], float, float]] = {
    "parity": (parity, 15, 90), "amp": (amp, 100, 150), "ddp": (ddp, 60, 120), "attention": (attention, 35, 120),
    "model": (model, 25, 120), "explorer": (explorer, 10, 90), "flex": (flex, 50, 60),
    "compile": (compiled_inference, 45, 60)}


# ------------------------------------------------------------------------------------------------ report

def device_info(device: str) -> dict:
    """The machine the figures belong to: GPU, driver, CUDA and torch versions, CPU, date."""
    info = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        info.update(gpu=properties.name, gpu_memory_gib=round(properties.total_memory / 2**30, 1),
                    capability=".".join(map(str, torch.cuda.get_device_capability(0))), driver=nvidia_driver(),
                    cudnn=torch.backends.cudnn.version())
    return info


def nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.splitlines()[0] if out else None


def run_checks(names: list[str], device: str, quick: bool, work: Path) -> list[dict]:
    """Every named check in turn, each with its own budget; one that breaks is reported and the next runs."""
    ctx = Context(device, quick, work)
    results = []
    for name in names:
        body, budget_s, quick_budget_s = CHECKS[name]
        budget = quick_budget_s if quick else budget_s
        started = time.monotonic()
        ctx.deadline = started + budget
        parts = Parts(ctx)
        print(f"[{name}] budget {budget:.0f} s", flush=True)
        try:
            body(ctx, parts)
            status = parts.status()
        except Exception as error:  # a check's set-up failing must not stop the others
            parts.items["setup"] = {"status": "fail", **failure(error)}
            status = "fail"
        seconds = round(time.monotonic() - started, 2)
        for part, figures in parts.items.items():
            note = figures.get("error") or figures.get("reason") or ""
            print(f"[{name}]   {part}: {figures['status']} {note}", flush=True)
        print(f"[{name}] {status} in {seconds} s", flush=True)
        results.append({"name": name, "status": status, "seconds": seconds, "budget_s": budget,
                        "figures": parts.items})
    return results


def markdown(report: dict) -> str:
    """The report as Markdown: the machine; one row per check and part with its scalar figures; then each part's
    measured rows (attention, model) as a table of their own."""
    info = report["device"]
    machine = [("GPU", info.get("gpu") or f"none (device {info['device']})"), ("driver", info.get("driver") or "-"),
               ("torch", report["torch"]), ("CUDA", info.get("cuda") or "-"), ("date", info["date"]),
               ("mode", "quick" if report["quick"] else "full")]
    lines = ["| machine | |", "| --- | --- |", *(f"| {key} | {value} |" for key, value in machine), "",
             "| check | part | status | seconds | figures |", "| --- | --- | --- | ---: | --- |"]
    tables = []
    for result in report["checks"]:
        lines.append(f"| **{result['name']}** | | **{result['status']}** | {result['seconds']} | |")
        for part, figures in result["figures"].items():
            shown = {key: value for key, value in figures.items() if key not in ("status", "traceback", "rows")}
            lines.append(f"| | {part} | {figures['status']} | | {_cell(shown)} |")
            if figures.get("rows"):
                tables += ["", f"{result['name']}, {part}:", "", *_rows_table(figures["rows"])]
    return "\n".join(lines + tables) + "\n"


def _value(item) -> str:
    if isinstance(item, float):
        return f"{item:.3g}"
    if isinstance(item, list):
        return " ".join(map(_value, item))
    return str(item)


def _cell(figures: dict) -> str:
    """Scalar figures on one table line, ``key: value`` separated by ``;``."""
    return "; ".join(f"{key}: {_value(item)}" for key, item in figures.items()).replace("|", "/")


def _rows_table(rows: dict[str, dict]) -> list[str]:
    """Measured rows (``label -> {column: value}``) as a Markdown table."""
    columns = list(dict.fromkeys(column for row in rows.values() for column in row))
    return [f"| | {' | '.join(columns)} |", "| --- |" + " ---: |" * len(columns),
            *(f"| {label} | {' | '.join(_value(row.get(column, '-')) for column in columns)} |"
              for label, row in rows.items())]


REPORTS = ("gpu_report.json", "gpu_report.md")


def write_report(report: dict, out: Path) -> None:
    """Both reports, atomically and through the output guard: a ``gpu_report.*`` the kit did not write stays."""
    from isanet.io.atomic import write_json_atomic, write_text_atomic

    json_name, markdown_name = REPORTS
    write_json_atomic(report, out / json_name)
    write_text_atomic(markdown(report), out / markdown_name)


def main(argv: list[str] | None = None) -> int:
    from isanet.cli import parse_guarded
    from isanet.cli.options import add_output
    from isanet.io.outputs import OutputError, check_replaceable

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(CHECKS), metavar="NAME",
                        help=f"run only these checks (of: {', '.join(CHECKS)})")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where the checks run (default: cuda when there is one); CUDA-only parts are "
                             "skipped on cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes and few steps (CI: --device cpu --quick)")
    add_output(parser, "--out", kind="dir", default=".",
               help="folder for gpu_report.json and .md (default: the current folder); reports there that isanet "
                    "did not write are refused before any check runs")
    args = parse_guarded(parser, argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to this PyTorch; use --device cpu")
    args.out = Path(args.out)
    try:
        for name in REPORTS:
            check_replaceable(args.out / name, "--out")
    except OutputError as error:
        parser.error(str(error))
    names = args.only or list(CHECKS)
    if args.device == "cpu":
        torch.set_num_threads(1)  # the in-process parts are small; threads only stall on a shared machine
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        checks = run_checks(names, args.device, args.quick, Path(work))
    report = {"device": device_info(args.device), "torch": torch.__version__, "quick": args.quick,
              "seconds": round(time.monotonic() - started, 2), "checks": checks}
    write_report(report, args.out)
    failed = [result["name"] for result in checks if result["status"] == "fail"]
    print(f"wrote {args.out / 'gpu_report.json'} and gpu_report.md in {report['seconds']} s; "
          + (f"FAILED: {', '.join(failed)}" if failed else "no check failed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
