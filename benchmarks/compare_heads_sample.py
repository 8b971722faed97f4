"""The ISA experiment of notebook 04, at full notebook size: the sample fine-tune with the ISA head, the dense
head (same projections) and no context module, equal iterations, over several seeds, on CPU.

Synthetic data (the VOC-layout sample of ``NOTEBOOK_SAMPLE_DATA``) and a tiny R-18 from random weights: the table
says what these heads do on this toy task, nothing about ISANet on Pascal VOC. Read the mIoU columns against
the spread over seeds of one head before reading a difference between heads.

    .venv/bin/python benchmarks/compare_heads_sample.py --seeds 0 1 2 --threads 1

Measured (shared 2-core CPU, one thread, 300 iterations, 2424 s): mIoU ISA 95.95 / 47.68 / 78.65, dense
97.65 / 76.65 / 91.62, none 97.69 / 73.68 / 89.56 for seeds 0 / 1 / 2 (table in benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

from isanet.models.head_registry import HEADS
from isanet.notebook.sample_finetune import FULL_ITERS, compare_heads, format_head_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--heads", nargs="+", default=["isa", "dense", "none"], choices=tuple(HEADS))
    parser.add_argument("--iters", type=int, default=FULL_ITERS)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="isanet_heads_") as root:  # the sample data is written here
        rows = compare_heads(root, tuple(args.heads), tuple(args.seeds), iters=args.iters,
                             on_row=lambda row: print(format_head_table([row]).splitlines()[1], flush=True))
    print(format_head_table(rows))
    for head in args.heads:
        values = [row["mIoU"] for row in rows if row["head"] == head]
        spread = f", min {min(values):.2f}, max {max(values):.2f}" if len(values) > 1 else ""
        print(f"{head:>6}: mean mIoU {statistics.mean(values):.2f} over seeds {args.seeds}{spread}")
    print(f"{len(rows)} runs of {args.iters} iterations in {time.perf_counter() - started:.0f} s on "
          f"{torch.get_num_threads()} CPU thread(s); SYNTHETIC sample data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
