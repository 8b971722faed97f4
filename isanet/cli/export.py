"""``isanet export [NAME] --checkpoint FILE --out model.onnx``: an ONNX file with a dynamic image size, checked.

The file takes a normalised ``1 x 3 x H x W`` image (any ``H, W`` from 65 to 8192) and returns ``1 x K x H x W``
logits, like ``model(x)`` in PyTorch. After writing it, the command runs it in ONNX Runtime at three sizes
(one that ``down_factor`` does not divide) and prints the largest relative difference from PyTorch; above
``--rtol`` it exits 1. Needs the ``[export]`` extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import argparse

from isanet.cli.errors import USER_ERRORS, usage_checks
from isanet.cli.options import add_checkpoint, add_memory_cap, add_output, memory_cap
from isanet.limits import bounded_float


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a model to ONNX (dynamic height/width) and check it",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="zoo name (1.x or legacy 0.x): the architecture; leave it out for a "
                                                "checkpoint isanet wrote (its meta names the architecture)")
    add_checkpoint(parser, required=True, help="weights file (mmseg format or isanet's)")
    add_output(parser, "--out", kind="file", suffixes=(".onnx",), required=True, help="the .onnx file to write")
    parser.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime check")
    add_memory_cap(parser, "an export whose example or check forward")
    parser.add_argument("--rtol", type=bounded_float(0, 1), default=1e-4,
                        help="largest max|ort-torch|/max|torch| accepted by the check, 0 to 1 (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from isanet.io.checkpoint import load_model
    from isanet.io.export import CHECK_SIZES, EXAMPLE_SIZE, check_memory, check_onnx, export_onnx, require_export

    cap, option = memory_cap(args)
    with usage_checks((ImportError, *USER_ERRORS)):  # the extra, the weights, the memory: before any work
        require_export(check=not args.no_check)
        model = load_model(args.checkpoint, args.name)
        check_memory(model, (EXAMPLE_SIZE,) + (() if args.no_check else CHECK_SIZES), cap, option)
    started = time.perf_counter()
    path = export_onnx(model, args.out, memory_cap_bytes=cap)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - started:.0f} s; "
          "input 'image' 1x3xHxW (H, W >= 65), output 'logits' 1xKxHxW")
    if args.no_check:
        return 0
    worst = 0.0
    for row in check_onnx(model, path, memory_cap_bytes=cap):
        worst = max(worst, row["max_rel_error"])
        print(f"  onnxruntime vs pytorch at {row['size'][0]}x{row['size'][1]}: max rel error "
              f"{row['max_rel_error']:.2e}")
    if worst > args.rtol:
        print(f"check failed: {worst:.2e} > --rtol {args.rtol:g}")
        return 1
    print(f"check passed (<= {args.rtol:g})")
    return 0
