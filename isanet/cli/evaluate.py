"""``isanet eval NAME --checkpoint FILE --data-root DIR``: mIoU on a data set, next to the published figure.

Prints a per-class table and a summary, and with ``--out`` writes the numbers and the settings that produced
them as JSON (atomically: a temporary file renamed into place, so a reader never sees half of it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a checkpoint on a data set (mIoU, aAcc, mAcc)")
    parser.add_argument("name", help="zoo name (1.x or legacy 0.x); decides the architecture and test settings")
    parser.add_argument("--checkpoint", required=True, help="weights file (mmseg format, raw or DDP state dict)")
    parser.add_argument("--data-root", required=True, help="the data set's folder (e.g. .../VOCdevkit/VOC2012, "
                                                           ".../cityscapes, .../ADEChallengeData2016) or its parent")
    parser.add_argument("--split", default="val", help="split to evaluate (default: %(default)s)")
    parser.add_argument("--ms-flip", action="store_true", help="mmseg's multi-scale (0.5-1.75) + flip TTA")
    parser.add_argument("--mode", choices=("whole", "slide"), help="override the zoo entry's test mode")
    parser.add_argument("--scale", type=int, nargs=2, metavar=("LONG", "SHORT"),
                        help="override the test scale (quick checks on small images; not comparable to the zoo)")
    parser.add_argument("--limit", type=int, help="evaluate the first N images only")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--out", help="write the results as JSON to this file")
    parser.set_defaults(func=run)


def summary(results: dict, entry: dict, dataset_root: Path) -> str:
    """The headline numbers beside the zoo's, with the caveats that make them incomparable."""
    from isanet.data.transforms import pipeline_step

    published = entry["mIoU_ms_flip"] if results["settings"]["ms_flip"] else entry["mIoU"]
    kind = "ms+flip" if results["settings"]["ms_flip"] else "single-scale"
    lines = [f"mIoU {results['mIoU']:.2f}  aAcc {results['aAcc']:.2f}  mAcc {results['mAcc']:.2f}  "
             f"on {results['num_images']} images",
             f"published ({entry['name']}): mIoU {entry['mIoU']:.2f} single-scale, {entry['mIoU_ms_flip']:.2f} "
             f"ms+flip; compare with {published:.2f} ({kind})"]
    if (dataset_root / "SAMPLE_DATA.txt").is_file():
        lines.append("note: this is synthetic sample data; the numbers say nothing about the published model")
    if tuple(results["settings"]["scale"]) != tuple(pipeline_step(entry["test_pipeline"], "Resize")["scale"]):
        lines.append(f"note: test scale {results['settings']['scale']} overrides the zoo's; not comparable")
    if results["settings"]["limit"] is not None:
        lines.append("note: --limit evaluates a subset; the published figure is over the whole split")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from isanet.data.datasets import build_dataset
    from isanet.evaluation.evaluate import EvalSettings, evaluate
    from isanet.evaluation.metrics import format_table
    from isanet.io.atomic import write_json_atomic
    from isanet.io.checkpoint import load_checkpoint
    from isanet.models import zoo
    from isanet.runtime import resolve_device

    try:
        entry = zoo.get_entry(args.name)
        device = resolve_device(args.device, "--device")
        dataset = build_dataset(entry["dataset"], args.data_root, args.split)
        model = zoo.build_model(entry["name"])
        load_checkpoint(model, args.checkpoint)
        overrides = {"scale": tuple(args.scale)} if args.scale else {}
        results = evaluate(model, dataset, EvalSettings.from_entry(entry, **overrides), mode=args.mode,
                           ms_flip=args.ms_flip, limit=args.limit, device=device)
    except (KeyError, ValueError, OSError) as error:  # DatasetError and CheckpointError are ValueErrors
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(format_table({key: list(results[key].values()) for key in ("IoU", "Acc")}, dataset.CLASSES))
    print(summary(results, entry, dataset.root))
    if args.out:
        record = {"model": entry["name"], "checkpoint": str(args.checkpoint), "data_root": str(dataset.root),
                  "dataset": entry["dataset"], "split": args.split, **results,
                  "published": {"mIoU": entry["mIoU"], "mIoU_ms_flip": entry["mIoU_ms_flip"]}}
        print(f"wrote {write_json_atomic(record, args.out)}")
    return 0
