"""Whole-model speed against mmsegmentation 1.2.2 on the same weights: our bf16 and fp32 (plain, BatchNorm
folded, ``optimize_for_inference``) against mmseg's fp32, timed interleaved in one run.

Runs in the scratch mmseg environment (``benchmarks/mmseg_env.md``); builds both models as
``benchmarks/reference_parity.py`` does (the same seeded random weights loaded strictly into both), then times
``EncoderDecoder.inference`` (mmseg) and :func:`isanet.predict` on one image-like input, every contender
interleaved (a, b, c, a, b, c, ...), median of ``--repeats``. Ours: fp32, fp32 with BatchNorm folded, fp32
``optimize_for_inference``, optionally fp32 folded in channels-last memory, bf16, bf16 optimized (= folded).
It prints each time, the speed-up over mmseg, our fp32 variants' max relative logit difference from mmseg (the
1e-5 contract), and the bf16 variants' argmax agreement with our fp32.

    /tmp/mmenv/bin/python benchmarks/model_speed.py --threads 1 --clock cpu            # R-50-D8 512x512 whole
    /tmp/mmenv/bin/python benchmarks/model_speed.py --threads 1 --clock cpu \\
        --config isanet_r101-d8_4xb2-40k_cityscapes-769x769 --size 512 1024 --mode slide --repeats 3

``--clock cpu`` measures the process's CPU time (use it with ``--threads 1``): on a machine shared with other
jobs it ignores the time they hold the core. The exit status is 1 when a target is missed (bf16 >= 1.8x and
fp32 optimized >= 1.1x mmseg's speed, >= 99.5 % pixel agreement, fp32 within 1e-5 of mmseg).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings

import torch
from reference_parity import build_mmseg, build_ours, diff, find_config_dir, make_input, stub_mmcv_ops

BF16_TARGET, FP32_TARGET, AGREEMENT_TARGET, RTOL = 1.8, 1.1, 0.995, 1e-5


def contenders(args, ref, ours, x: torch.Tensor) -> dict:
    """Name -> zero-argument call returning logits, every one on the same input."""
    from isanet import predict
    from isanet.models.fold import fold_batchnorm
    from isanet.models.optimize import optimize_for_inference

    h, w = x.shape[2:]
    metas = [dict(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w), padding_size=[0, 0, 0, 0])]
    windows = dict(mode=args.mode)
    if args.mode == "slide":
        windows.update(crop_size=tuple(ref.test_cfg.crop_size), stride=tuple(ref.test_cfg.stride))
    folded, optimized = fold_batchnorm(ours), optimize_for_inference(ours, "fp32")
    calls = {"mmseg fp32": lambda: ref.inference(x, metas),
             "ours fp32": lambda: predict(ours, x, **windows),
             "ours fp32 folded-bn": lambda: predict(folded, x, **windows),
             "ours fp32 optimized": lambda: predict(optimized, x, **windows)}
    if args.channels_last:
        last = copy.deepcopy(folded).to(memory_format=torch.channels_last)
        x_last = x.contiguous(memory_format=torch.channels_last)
        calls["ours fp32 folded-bn channels-last"] = lambda: predict(last, x_last, **windows)
    calls["ours bf16"] = lambda: predict(ours, x, precision="bf16", **windows)
    calls["ours bf16 optimized"] = lambda: predict(folded, x, precision="bf16", **windows)  # bf16: folding only
    return calls


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="isanet_r50-d8_4xb4-20k_voc12aug-512x512", help="zoo / mmseg config")
    parser.add_argument("--config-dir", help="mmseg's configs folder (the one holding isanet/ and _base_/)")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    parser.add_argument("--mode", choices=("whole", "slide"), default="whole",
                        help="slide uses the config's test crop and stride")
    parser.add_argument("--channels-last", action="store_true", help="also fp32 folded in channels-last memory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(mmseg|mmcv)(\.|$)")
    if args.threads:
        torch.set_num_threads(args.threads)
    stub_mmcv_ops()
    from isanet.analysis.measure import time_calls

    ref, cfg = build_mmseg(args.config, find_config_dir(args.config_dir))
    ours, state = build_ours(args.config, args.seed)
    ref.load_state_dict(state, strict=True)
    if args.mode == "slide" and cfg.model.test_cfg.mode != "slide":
        raise SystemExit(f"{args.config} tests in whole mode; pick a slide config (e.g. ...-769x769)")
    x = make_input(tuple(args.size), args.seed)
    calls = contenders(args, ref, ours, x)
    with torch.no_grad():
        outputs = {name: call().float() for name, call in calls.items()}
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    started = time.perf_counter()
    with torch.no_grad():
        ms = time_calls(calls, repeats=args.repeats, warmup=args.warmup, clock=clock)
    print(f"{args.config}, {args.mode} {args.size[0]}x{args.size[1]}, same seeded random weights in both, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.clock} clock, median of "
          f"{args.repeats} interleaved rounds after {args.warmup} warm-up ({time.perf_counter() - started:.0f} s)")
    base, ours_fp32 = ms["mmseg fp32"], outputs["ours fp32"]
    ok = True
    for name, value in ms.items():
        speedup = base / value
        line = f"  {name:34s} {value / 1e3:7.2f} s   speed-up over mmseg fp32 {speedup:5.2f}x"
        if "bf16" in name:
            agreement = (outputs[name].argmax(1) == ours_fp32.argmax(1)).float().mean().item()
            met = speedup >= BF16_TARGET and agreement >= AGREEMENT_TARGET
            line += f"   argmax = ours fp32 on {100 * agreement:.2f} % of pixels"
            line += f"   target >= {BF16_TARGET}x, >= {100 * AGREEMENT_TARGET} %: {'met' if met else 'NOT met'}"
            ok &= met
        elif name.startswith("ours"):
            rel = diff(outputs[name], outputs["mmseg fp32"])[1]
            line += f"   rel diff from mmseg {rel:.1e}"
            if "optimized" in name:
                met = speedup >= FP32_TARGET and rel <= RTOL
                line += f"   target >= {FP32_TARGET}x, <= {RTOL:g}: {'met' if met else 'NOT met'}"
                ok &= met
        print(line, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
