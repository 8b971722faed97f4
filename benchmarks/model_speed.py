"""Whole-model speed of the compiled copy (``isanet.optimize_for_inference``: torch.compile, weights frozen)
against mmsegmentation 1.2.2 fp32 on the same weights, every contender timed interleaved in one run (by
``isanet.analysis.model_bench.time_model``, the harness ``isanet bench model`` times with).

Contenders: mmseg fp32 (``EncoderDecoder.inference``) when mmseg is importable (the scratch environment of
``benchmarks/mmseg_env.md``), our eager fp32 and bf16, and our compiled fp32 and bf16 (each through a
:class:`~isanet.evaluation.inference.Predictor`, whole or slide). Without mmseg the reference is our eager fp32,
which is mmseg's speed within a few per cent (``benchmarks/README.md``), and the script says so. It prints each
time and speed-up, each compile (first call, wall clock) with the image count from which it pays off, the
compiled fp32 logits' max relative difference from eager fp32 (and mmseg's), argmax agreements, each row's
achieved GFLOP/s (FlopCounterMode's count of the timed call over its time), and the **ceiling**: this machine's
peak probe per precision (``isanet.analysis.model_bench.peak_gflops``, measured in the same run) and the speed-up
over the reference that code running at that peak would reach. A target above its ceiling is beyond what this
machine's own libraries reach on any kernel; the script says so. ``--survey`` also times a few more matmul and
convolution shapes per precision, to show that the probe is not an unlucky shape.

    python benchmarks/model_speed.py --threads 1 --clock cpu            # R-50-D8 512x512 whole
    python benchmarks/model_speed.py --threads 1 --clock cpu --config isanet_r101-d8_4xb4-20k_voc12aug-512x512
    python benchmarks/model_speed.py --threads 1 --clock cpu \\
        --config isanet_r101-d8_4xb2-40k_cityscapes-769x769 --size 512 1024 --mode slide --repeats 3
    python benchmarks/model_speed.py --threads 1 --clock cpu --checkpoint teaching_isa.pth --size 128 128

``--clock cpu`` measures the process's CPU time (use it with ``--threads 1``): on a machine shared with other
jobs it ignores the time they hold the core. Targets (exit status 1 when one is missed): compiled bf16 >= 3.2x
and compiled fp32 >= 1.6x the reference fp32, compiled bf16 argmax = eager fp32 on >= 99.0 % of pixels with
random weights (>= 99.9 % with a trained ``--checkpoint``), compiled fp32 argmax equal to eager fp32's and its
logits within 1e-5 relative.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings

import torch
from reference_parity import build_ours, find_config_dir, make_input, stub_mmcv_ops

BF16_TARGET, FP32_TARGET, RTOL = 3.2, 1.6, 1e-5
AGREEMENT_RANDOM, AGREEMENT_TRAINED = 0.990, 0.999


def mmseg_call(args, x: torch.Tensor):
    """mmseg's fp32 inference on our seeded weights, or None (with the reason printed) without mmseg."""
    try:
        stub_mmcv_ops()
        from reference_parity import build_mmseg

        ref, cfg = build_mmseg(args.config, find_config_dir(args.config_dir))
    except (ImportError, SystemExit) as error:
        print(f"mmseg 1.2.2 is not importable here ({str(error).splitlines()[0]}): the reference is our eager "
              "fp32, mmseg's speed within a few per cent (benchmarks/README.md)")
        return None
    ref.load_state_dict(build_ours(args.config, args.seed)[1], strict=True)
    h, w = x.shape[2:]
    metas = [dict(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w), padding_size=[0, 0, 0, 0])]
    return lambda: ref.inference(x, metas)


def our_model(args):
    """The model and its test settings (whole or slide): a checkpoint's, or the zoo entry with seeded weights."""
    from isanet.io.checkpoint import load_model
    from isanet.models.zoo import get_entry

    test = get_entry(args.config).test
    if args.mode == "slide" and test.crop_size is None:
        raise SystemExit(f"{args.config} tests in whole mode; pick a slide config (e.g. ...-769x769)")
    settings = test.replace(mode=args.mode, **({} if args.mode == "slide" else {"crop_size": None, "stride": None}))
    model = load_model(args.checkpoint) if args.checkpoint else build_ours(args.config, args.seed)[0]
    return model.eval(), settings


def kernel_survey(clock) -> None:
    """GFLOP/s of square matmuls and 3x3 convolutions (NCHW and channels-last) in fp32 and bf16, one line each:
    the best single kernels this machine's libraries (MKL, oneDNN) reach, beside the peak probe (the same
    probes as ``peak_gflops``, over more shapes)."""
    from isanet.analysis.model_bench import kernel_calls, kernel_gflops

    for precision in ("fp32", "bf16"):
        calls = kernel_calls(precision, matmuls=(1024, 2048), convolutions=((512, 32), (256, 64), (1024, 16)),
                             channels_last=True)
        gflops = kernel_gflops(calls, repeats=3, warmup=1, clock=clock)
        print(f"  survey {precision}: " + ", ".join(f"{name} {value:.0f}" for name, value in gflops.items())
              + " GFLOP/s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="isanet_r50-d8_4xb4-20k_voc12aug-512x512", help="zoo / mmseg config")
    parser.add_argument("--config-dir", help="mmseg's configs folder (the one holding isanet/ and _base_/)")
    parser.add_argument("--checkpoint", help="trained weights (the architecture its meta records); no mmseg row")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    parser.add_argument("--mode", choices=("whole", "slide"), default="whole",
                        help="slide uses the config's test crop and stride")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--survey", action="store_true", help="also time more matmul and convolution shapes")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(mmseg|mmcv)(\.|$)")
    if args.threads:
        torch.set_num_threads(args.threads)
    from isanet.analysis.model_bench import count_model_flops, peak_gflops, time_model
    from isanet.evaluation.inference import Predictor

    x = make_input(tuple(args.size), args.seed)
    model, settings = our_model(args)
    calls = {}
    reference = None if args.checkpoint else mmseg_call(args, x)
    if reference is not None:
        calls["mmseg fp32"] = reference
    predictors = {f"ours {precision}{' compiled' * optimize}": Predictor(model, settings, precision,
                                                                          optimize=optimize)
                  for optimize in (False, True) for precision in ("fp32", "bf16")}
    calls.update({name: (lambda p=p: p.logits(x)) for name, p in predictors.items()})
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    started = time.perf_counter()
    timed = time_model(calls, args.repeats, args.warmup, clock=clock)
    base_name = "mmseg fp32" if "mmseg fp32" in timed else "ours fp32"
    flops = count_model_flops(lambda m, t: Predictor(m, settings, device="meta").logits(t), model, x)[0]
    peaks = {precision: peak_gflops(precision, clock=clock) for precision in ("fp32", "bf16")}
    print(f"{args.checkpoint or args.config}, {args.mode} {args.size[0]}x{args.size[1]}, "
          f"{'trained weights' if args.checkpoint else 'seeded random weights'}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {args.clock} clock, median of {args.repeats} interleaved rounds "
          f"after {args.warmup} warm-up ({time.perf_counter() - started:.0f} s with the first calls); "
          f"reference {base_name}")
    agreement_target = AGREEMENT_TRAINED if args.checkpoint else AGREEMENT_RANDOM
    ok = True
    for name in timed:
        line, met = contender_line(name, timed, base_name, flops, agreement_target)
        print(line, flush=True)
        ok &= met
    reference_gflops = flops / timed[base_name].ms / 1e6
    print(f"ceiling ({flops / 1e9:.1f} GFLOPs per call; the reference runs at {reference_gflops:.1f} GFLOP/s):")
    for precision, target in (("fp32", FP32_TARGET), ("bf16", BF16_TARGET)):
        ceiling = peaks[precision] / reference_gflops
        verdict = "within the ceiling" if ceiling >= target else "above the ceiling: not reachable here"
        print(f"  {precision}: peak probe {peaks[precision]:.1f} GFLOP/s = {ceiling:.2f}x the reference at most; "
              f"target {target}x: {verdict}")
    if args.survey:
        kernel_survey(clock)
    return 0 if ok else 1


def contender_line(name: str, timed: dict, base_name: str, flops: int, agreement_target: float) -> tuple[str, bool]:
    """One contender's line (time, speed-up, GFLOP/s, agreement with eager fp32; for a compiled one its compile,
    break-even and target) and whether it met its target (True for the uncompiled ones, which have none)."""
    from isanet.analysis.compare import max_relative_difference, pixel_agreement
    from isanet.analysis.model_bench import break_even_images

    row, eager = timed[name], timed["ours fp32"].output
    speedup = timed[base_name].ms / row.ms
    agreement, relative = pixel_agreement(row.output, eager), max_relative_difference(row.output, eager)
    line = f"  {name:20s} {row.ms / 1e3:7.3f} s   {speedup:5.2f}x {base_name}   {flops / row.ms / 1e6:5.1f} GFLOP/s"
    if name != "ours fp32":
        line += f"   argmax = eager fp32 on {100 * agreement:.2f} %"
    if name.startswith("ours") and "fp32" in name:
        line += f"   rel diff from eager fp32 {relative:.1e}"
    if not name.endswith("compiled"):
        return line, True
    precision = name.split()[1]
    break_even = break_even_images(row, timed[f"ours {precision}"])
    pays = f"pays off from {math.ceil(break_even)} images" if math.isfinite(break_even) else "never pays off"
    line += f"   compile {row.compile_s:.0f} s (wall), {pays} against eager {precision}"
    if precision == "bf16":
        met = speedup >= BF16_TARGET and agreement >= agreement_target
        target = f">= {BF16_TARGET}x, >= {100 * agreement_target:.1f} %"
    else:
        met = speedup >= FP32_TARGET and agreement == 1.0 and relative <= RTOL
        target = f">= {FP32_TARGET}x, argmax equal, <= {RTOL:g}"
    return line + f"   target {target}: {'met' if met else 'NOT met'}", met


if __name__ == "__main__":
    sys.exit(main())
