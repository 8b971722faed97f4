"""``isanet bench attention``: peak memory, FLOPs and time of dense vs ISA attention, and their ratios.
``isanet bench model NAME``: the whole model (parameters, FLOPs, memory, latency, images/s, GFLOP/s) in fp32,
bf16, with BatchNorm folded, channels-last or in ONNX Runtime, timed side by side.

Measures the attention part alone (``ISAModule``: both relations with their projections, against one
``SelfAttentionBlock`` with the same projections; with ``--methods`` also criss-cross ``ccnet``, ``axial``,
``window`` and ``strided`` attention on the same projections, window side and stride = ``--down-factor``;
``ccnet`` and ``strided`` have no sdpa form and compute explicitly, marked ``sdpa*``) on ``1 x C x h x w``
maps, or with ``--paper-setting`` the authors' own setting (a 2048-channel map through a 3x3 conv-BN-ReLU to
512, then the block; 10 warm-up runs and the mean of 100 on a GPU). Prints the rows and a dense/ISA ratio
table; ``--json`` and ``--plot`` save them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from isanet.cli.errors import usage_checks
from isanet.cli.options import (
    add_checkpoint,
    add_device,
    add_memory_cap,
    add_output,
    add_precision,
    add_threads,
    memory_cap,
)
from isanet.limits import MAX_CHANNELS, MAX_IMAGE_SIDE, bounded_int, image_side, positive_int
from isanet.models.attention import KERNELS
from isanet.models.efficient.flex import ORDERS
from isanet.models.efficient.registry import METHODS
from isanet.models.heads import HEADS

DEFAULT_SIZES = ["32", "64", "128"]


def parse_size(text: str) -> tuple[int, int]:
    """``"64"`` -> (64, 64); ``"48x80"`` -> (48, 80)."""
    try:
        parts = [int(part) for part in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is N or HxW, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"a size is N or HxW with positive numbers, got {text!r}")
    if max(parts) > MAX_IMAGE_SIDE:
        raise argparse.ArgumentTypeError(f"{text} is out of range: a side is at most {MAX_IMAGE_SIDE}")
    return parts[0], parts[1]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="measure attention (dense vs ISA) or a whole model")
    commands = parser.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    attention = commands.add_parser("attention", help=__doc__.splitlines()[0], description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    attention.add_argument("--sizes", type=parse_size, nargs="+", metavar="N|HxW",
                           help=f"feature map sizes (default {' '.join(DEFAULT_SIZES)}; 128 with --paper-setting)")
    channels = bounded_int(1, MAX_CHANNELS)
    attention.add_argument("--channels", type=channels, default=512, help="channels of the map (default 512)")
    attention.add_argument("--isa-channels", type=channels, default=256, help="key/query channels (default 256)")
    attention.add_argument("--down-factor", type=bounded_int(1, MAX_IMAGE_SIDE), nargs=2, default=(8, 8),
                           metavar=("LOC_H", "LOC_W"))
    add_device(attention, auto=False)
    attention.add_argument("--kernels", nargs="+", choices=KERNELS, default=["matmul", "sdpa"],
                           help="default: matmul sdpa (flex compiles each mask first: seconds per mask on a CPU)")
    attention.add_argument("--orders", nargs="+", choices=ORDERS,
                           help="--kernels flex only: one row per token order (default: row)")
    attention.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=["dense", "isa"],
                           help="dense, isa and the other efficient attentions (default: dense isa)")
    attention.add_argument("--backward", action="store_true", help="measure forward + backward")
    attention.add_argument("--repeats", type=positive_int,
                           help="timed calls (default 5; paper setting: 100 on GPU, 3 on CPU)")
    attention.add_argument("--warmup", type=bounded_int(0),
                           help="untimed calls first (default 1; paper setting: 10 on GPU, 1 on CPU)")
    add_memory_cap(attention, "a row (reported as oom)", cpu_only=True)
    attention.add_argument("--paper-setting", action="store_true",
                           help="the authors' setting: 2048-channel input, 3x3 conv-BN-ReLU to --channels, "
                                "then the block; mean time")
    add_threads(attention)
    add_output(attention, "--json", kind="file", suffixes=(".json",), help="write the rows as JSON")
    add_output(attention, "--plot", kind="file", suffixes=(".png", ".svg", ".pdf"),
               help="save a log-log plot of memory and time against size")
    attention.set_defaults(func=run_attention)
    add_model_parser(commands)


def add_model_parser(commands) -> None:
    model = commands.add_parser(
        "model", help="one zoo model: FLOPs, memory, latency, images/s, GFLOP/s vs the machine's peak",
        description="One zoo model on one input, every requested variant timed interleaved (median), achieved GFLOP/s "
                    "beside a measured peak (best of a matmul and a 3x3 conv). FLOPs come "
                    "from FlopCounterMode and include the attention matmuls; the header says how many of them a "
                    "counter that skips attention would miss. Random seeded weights unless --checkpoint.")
    model.add_argument("name", help="zoo name (1.x or legacy 0.x)")
    model.add_argument("--size", type=image_side, nargs=2, metavar=("H", "W"),
                       help=f"input size, 1 to {MAX_IMAGE_SIDE} a side (default: the entry's crop)")
    model.add_argument("--mode", choices=("whole", "slide"), help="default: the entry's test mode")
    model.add_argument("--crop", type=image_side, nargs=2, metavar=("H", "W"),
                       help="slide window (default: the entry's test crop, else its training crop)")
    model.add_argument("--stride", type=image_side, nargs=2, metavar=("H", "W"),
                       help="slide stride (default: the entry's, else 2/3 of the crop)")
    model.add_argument("--head", choices=tuple(HEADS), default="isa", help="decode head (default: %(default)s)")
    add_precision(model, many=True, help="one row per precision (default: fp32); e.g. --precision fp32 bf16")
    model.add_argument("--fold-bn", action="store_true", help="also each precision with BatchNorm folded into convs")
    model.add_argument("--optimize", action="store_true",
                       help="also each precision compiled by isanet.optimize_for_inference (torch.compile, weights "
                            "frozen), with its compile time and break-even image count")
    model.add_argument("--channels-last", action="store_true", help="also each precision in channels-last memory")
    model.add_argument("--onnx", action="store_true", help="also ONNX Runtime on CPU (fp32; needs isanet[export])")
    add_checkpoint(model, help="weights to load (default: random, seed 0)")
    add_device(model)
    model.add_argument("--repeats", type=positive_int, default=5, help="timed rounds (default: %(default)s)")
    model.add_argument("--warmup", type=bounded_int(0), default=1, help="untimed rounds first (default: %(default)s)")
    add_threads(model, help="torch.set_num_threads (and ONNX Runtime's intra-op threads)")
    add_memory_cap(model, "a run (every variant's copy of the weights included)", cpu_only=True)
    model.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                       help="wall time, or process CPU time (steady on a busy machine; use with --threads 1)")
    add_output(model, "--json", kind="file", suffixes=(".json",), help="write the measurements as JSON")
    model.set_defaults(func=run_model)


def run_model(args: argparse.Namespace) -> int:
    import torch

    from isanet.analysis.model_bench import Variant, bench_model, format_bench
    from isanet.data.sample_checkpoint import random_state_dict
    from isanet.evaluation.inference import MemoryCap
    from isanet.io.atomic import write_json_atomic
    from isanet.io.checkpoint import load_checkpoint
    from isanet.models import footprint, zoo
    from isanet.runtime import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    with usage_checks():
        entry = zoo.get_entry(args.name)
        device = resolve_device(args.device, "--device")
    test = entry.test
    mode = args.mode or test.mode
    if mode == "whole" and (args.crop or args.stride):
        with usage_checks():
            raise ValueError(f"{'--crop' if args.crop else '--stride'} sets the sliding window, and the run predicts "
                             f"whole pictures ({'--mode whole' if args.mode else f'{entry.name} tests whole'}): "
                             "add --mode slide or drop it")
    size = tuple(args.size or entry.train.crop_size)
    crop = tuple(args.crop or test.crop_size or entry.train.crop_size)
    stride = tuple(args.stride or test.stride or [max(1, 2 * side // 3) for side in crop])
    windows = {"crop_size": crop, "stride": stride} if mode == "slide" else {"crop_size": None, "stride": None}
    settings = test.replace(mode=mode, **windows)
    preparations = ["plain"] + ["folded-bn"] * args.fold_bn + ["optimized"] * args.optimize
    variants = [Variant(precision, preparation, last) for precision in args.precision for preparation in preparations
                for last in ((False, True) if args.channels_last else (False,))]
    if args.onnx:
        variants.append(Variant(onnx=True))
    cap_bytes, option = memory_cap(args)
    cap = MemoryCap(cap_bytes if device == "cpu" else None, option)
    config = zoo.model_config(entry.name, head=args.head)
    with usage_checks():  # every window counted and the peak estimated, a copy of the weights per variant, first
        one = footprint.logits(config, *size, 1, mode, settings.crop_size, settings.stride)
        cap.check(dataclasses.replace(one, what=f"--size {size[0]} {size[1]}: {one.what}",
                                      bytes=one.bytes + (1 + len(variants)) * footprint.model_bytes(config)))
    model = zoo.build_model(entry.name, head=args.head)
    if args.checkpoint:
        with usage_checks():
            load_checkpoint(model, args.checkpoint)
        weights = args.checkpoint
    else:
        model.load_state_dict(random_state_dict(model, seed=0))
        weights = "random (seed 0)"
    result = bench_model(model, entry.name, size, variants, settings, device, args.repeats,
                         args.warmup, weights, args.clock,
                         progress=lambda message: print(f"  {message}", file=sys.stderr, flush=True), memory_cap=cap)
    print(format_bench(result))
    if args.json:
        print(f"wrote {write_json_atomic(result.to_dict(), args.json)}")
    return 0


def check_orders(orders: list[str] | None, kernels: list[str], device: str, backward: bool) -> None:
    """``--orders`` only where a row uses it: flex rows that run flex (not its masked fallback)."""
    from isanet.models.efficient.flex import falls_back

    if not orders:
        return
    if "flex" not in kernels:
        raise ValueError(f"--orders {' '.join(orders)}: token orders apply to --kernels flex only (the order of "
                         "its block mask); add flex to --kernels or drop --orders")
    if falls_back(device, backward):
        raise ValueError(f"--orders {' '.join(orders)}: flex has no backward on a CPU, so with --backward its "
                         "rows run as masked matmul, in no token order; drop --orders or --backward")


def run_attention(args: argparse.Namespace) -> int:
    import torch

    from isanet.analysis import attention_bench
    from isanet.io.atomic import write_text_atomic
    from isanet.runtime import resolve_device

    with usage_checks():
        on_gpu = resolve_device(args.device, "--device") == "cuda"
        check_orders(args.orders, args.kernels, "cuda" if on_gpu else "cpu", args.backward)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.paper_setting:
        repeats = args.repeats or (100 if on_gpu else 3)
        warmup = args.warmup if args.warmup is not None else (10 if on_gpu else 1)
    else:
        repeats, warmup = args.repeats or 5, args.warmup if args.warmup is not None else 1
    sizes = args.sizes or [parse_size(text) for text in
                           ([str(attention_bench.PAPER_SIZE)] if args.paper_setting else DEFAULT_SIZES)]
    cap = None if on_gpu else memory_cap(args)[0]
    print(f"{' vs '.join(args.methods)} attention on {args.device} (torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads)"
          f", channels {args.channels}, isa channels {args.isa_channels}, down factor {tuple(args.down_factor)}"
          f"{', forward+backward' if args.backward else ', forward (no_grad)'}"
          f"{', paper setting (2048-ch input + 3x3 conv)' if args.paper_setting else ''}; "
          f"{'mean' if args.paper_setting else 'median'} of {repeats} after {warmup} warm-up", flush=True)

    def progress(row) -> None:
        print(f"  {row.method:7s} {row.kernel:6s} {row.height}x{row.width}: {row.status}", file=sys.stderr,
              flush=True)

    rows = attention_bench.bench_attention(
        sizes, channels=args.channels, isa_channels=args.isa_channels, down_factor=tuple(args.down_factor),
        kernels=args.kernels, methods=args.methods, device=args.device, backward=args.backward,
        repeats=repeats, warmup=warmup, memory_cap_bytes=cap, paper_setting=args.paper_setting,
        statistic="mean" if args.paper_setting else "median", orders=args.orders or ["row"], progress=progress)
    print(attention_bench.format_rows(rows))
    print()
    print(attention_bench.format_ratios(rows))
    if args.paper_setting:
        print("\nas the authors count memory (peak over the input, weights included, MiB): " + ", ".join(
            f"{row.method}[{row.kernel}] {row.paper_memory_mib:.1f}" if row.paper_memory_mib is not None else
            f"{row.method}[{row.kernel}] oom" for row in rows))
    if args.json:
        print(f"wrote {write_text_atomic(json.dumps([row.to_dict() for row in rows], indent=1), args.json)}")
    if args.plot:
        from isanet.notebook.plots import plot_bench

        plot_bench(rows, args.plot)
        print(f"wrote {args.plot}")
    return 0
