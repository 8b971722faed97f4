"""Dense vs ISA attention, measured side by side in one run: the figures of ``benchmarks/README.md``.

A thin wrapper over :func:`isanet.analysis.attention_bench.bench_attention` (the code behind
``isanet bench attention``): the attention part alone at each size, then, with ``--paper-setting``, the
authors' setting (2048-channel input, 3x3 conv-BN-ReLU to 512, then the block). Prints the rows, the
dense/ISA ratios next to the targets and next to the affinity-size ratio the partition predicts, and
optionally saves every row as JSON.

    .venv/bin/python benchmarks/attention.py --threads 1 --json /tmp/attention.json
    .venv/bin/python benchmarks/attention.py --sizes 128 --paper-setting --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from isanet.analysis import attention_bench
from isanet.cli import parse_guarded
from isanet.cli.options import add_output
from isanet.io.atomic import write_text_atomic
from isanet.limits import bounded_float
from isanet.models.isa import Partition

TARGETS = {"memory": 10.0, "flops": 6.0}  # dense/ISA at 128x128, 512 channels, explicit (matmul) kernels


def summary(rows: list[attention_bench.BenchRow], down_factor: tuple[int, int], targets: bool = True) -> str:
    """One line per size and kernel: measured ratios, the affinity-entry ratio, and (``targets``) the
    targets, which are set for the attention part alone."""
    by_key = {(r.kernel, r.height, r.width, r.method): r for r in rows}
    lines = []
    for (kernel, h, w, method), isa in by_key.items():
        dense = by_key.get((kernel, h, w, "dense"))
        if method != "isa" or dense is None:
            continue
        affinity_dense, affinity_isa = Partition(h, w, *down_factor).affinity_entries()
        ratios = {"memory": (dense.peak_memory_bytes, isa.peak_memory_bytes), "flops": (dense.flops, isa.flops),
                  "time": (dense.time_ms, isa.time_ms)}
        parts = []
        for name, (a, b) in ratios.items():
            text = f"{a / b:.1f}x" if a and b else "n/a"
            if targets and name in TARGETS and kernel == "matmul" and (h, w) == (128, 128) and a and b:
                text += f" ({'meets' if a / b >= TARGETS[name] else 'misses'} the {TARGETS[name]:g}x target)"
            parts.append(f"{name} {text}")
        lines.append(f"{kernel:6s} {h}x{w}: " + ", ".join(parts)
                     + f"; affinity entries {affinity_dense / affinity_isa:.1f}x")
    return "\n".join(lines)


def run(args: argparse.Namespace, paper_setting: bool) -> list[attention_bench.BenchRow]:
    on_gpu = args.device == "cuda"
    repeats = args.repeats or (100 if paper_setting and on_gpu else 3)
    warmup = args.warmup if args.warmup is not None else (10 if paper_setting and on_gpu else 1)
    sizes = [(s, s) for s in (args.sizes if not paper_setting else [attention_bench.PAPER_SIZE])]
    title = "paper setting (1x2048 input, 3x3 conv-BN-ReLU 2048->512, then the block)" if paper_setting \
        else f"attention part alone (1x{args.channels} map)"
    print(f"\n== {title}; {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'mean' if paper_setting else 'median'} of {repeats} after {warmup} warm-up", flush=True)
    rows = attention_bench.bench_attention(
        sizes, channels=args.channels, isa_channels=args.isa_channels, down_factor=tuple(args.down_factor),
        kernels=args.kernels, device=args.device, backward=args.backward, repeats=repeats, warmup=warmup,
        memory_cap_bytes=int(args.memory_cap_gb * 2**30) if args.memory_cap_gb else None,
        paper_setting=paper_setting, statistic="mean" if paper_setting else "median",
        progress=lambda row: print(f"   measured {row.method} {row.kernel} {row.height}x{row.width}: "
                                   f"{row.status}", file=sys.stderr, flush=True))
    print(attention_bench.format_rows(rows))
    print(summary(rows, tuple(args.down_factor), targets=not paper_setting))
    if paper_setting:
        print("as the authors count memory (call peak + weights, input excluded), MiB: " + ", ".join(
            f"{r.method}[{r.kernel}] " + (f"{r.paper_memory_mib:.1f}" if r.paper_memory_mib else "oom")
            for r in rows))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--isa-channels", type=int, default=256)
    parser.add_argument("--down-factor", type=int, nargs=2, default=(8, 8))
    parser.add_argument("--kernels", nargs="+", default=["matmul", "sdpa"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backward", action="store_true")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--memory-cap-gb", type=bounded_float(0), default=8.0)
    parser.add_argument("--paper-setting", action="store_true", help="also run the authors' setting")
    parser.add_argument("--threads", type=int)
    add_output(parser, "--json", kind="file", suffixes=(".json",), help="write every row here")
    args = parse_guarded(parser, argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = run(args, paper_setting=False)
    if args.paper_setting:
        rows += run(args, paper_setting=True)
    if args.json:
        write_text_atomic(json.dumps([row.to_dict() for row in rows], indent=1), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
