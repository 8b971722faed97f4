"""``isanet eval NAME --checkpoint FILE --data-root DIR``: mIoU on a data set, next to the published figure.

Prints a per-class table, the most-confused class pairs and a summary; with ``--out`` writes the numbers, the
confusion matrix (pixel counts) and the settings that produced them as JSON, with ``--confusion`` the
row-normalised matrix as a picture (both atomically: a temporary file renamed into place, so a reader never
sees half of it). Your own data in the folder layout (:mod:`isanet.data.folder`) is read with ``--dataset
folder``, or found by itself; the model then predicts the classes of its ``classes.txt``. A checkpoint whose meta
records a training recipe (``isanet train --recipe``) is evaluated at the scale it was validated at, unless
``--scale`` says otherwise. ``--identity-step`` evaluates an ISA model with one step's attention replaced by
identity (:mod:`isanet.analysis.identity_step`): the ablation that says whether the model uses that step.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from isanet.analysis.identity_step import STEP_OPTIONS
from isanet.cli import options
from isanet.cli.errors import usage_checks
from isanet.cli.options import (
    add_checkpoint,
    add_device,
    add_input,
    add_memory_cap,
    add_output,
    add_precision,
    add_scale,
    memory_cap,
)
from isanet.data.registry import DATASETS
from isanet.limits import positive_int
from isanet.models.zoo import ZooEntry


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a checkpoint on a data set (mIoU, aAcc, mAcc)")
    parser.add_argument("name", help="zoo name (1.x or legacy 0.x); decides the test settings, and the architecture "
                                     "unless the checkpoint records its own (files of isanet train)")
    add_checkpoint(parser, required=True, help="weights file (mmseg format, raw or DDP state dict)")
    add_input(parser, "--data-root", required=True, help="the data set's folder (e.g. .../VOCdevkit/VOC2012, "
                                                           ".../cityscapes, .../ADEChallengeData2016) or its parent")
    parser.add_argument("--dataset", choices=tuple(DATASETS),
                        help="how to read --data-root (default: folder when it holds classes.txt, images/ and "
                             "masks/, else the entry's data set)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="folder data set: leave bad image/mask pairs out, a warning each, instead of stopping")
    parser.add_argument("--split", default="val", help="split to evaluate (default: %(default)s)")
    parser.add_argument("--ms-flip", action="store_true", help="mmseg's multi-scale (0.5-1.75) + flip TTA")
    parser.add_argument("--mode", choices=("whole", "slide"), help="override the zoo entry's test mode")
    add_scale(parser, help="override the test scale (quick checks on small images; not comparable to the zoo)")
    parser.add_argument("--limit", type=positive_int, help="evaluate the first N images only")
    add_device(parser)
    add_precision(parser, help="autocast of the forward passes: bf16 on CPUs with AVX-512 BF16/AMX and GPUs, fp16 on "
                               "GPUs; an unsupported choice falls back to fp32 with a warning (default: %(default)s)")
    options.add_optimize(parser)
    add_memory_cap(parser, "a picture")
    parser.add_argument("--identity-step", choices=STEP_OPTIONS,
                        help="ISA models only: that step's attention replaced by identity (each pixel attends to "
                             "itself alone; projections kept), to measure whether the model uses the step")
    add_output(parser, "--out", kind="file", suffixes=(".json",),
               help="write the results (with the confusion matrix's pixel counts) as JSON")
    add_output(parser, "--confusion", kind="file", suffixes=(".png",),
               help="draw the row-normalised confusion matrix there")
    parser.set_defaults(func=run)


def summary(results: dict, entry: ZooEntry, dataset_root: Path, own_data: bool = False) -> str:
    """The headline numbers beside the zoo's (not for ``own_data``), with the caveats that make them incomparable."""
    published = entry.mIoU_ms_flip if results["settings"]["ms_flip"] else entry.mIoU
    kind = "ms+flip" if results["settings"]["ms_flip"] else "single-scale"
    lines = [f"mIoU {results['mIoU']:.2f}  aAcc {results['aAcc']:.2f}  mAcc {results['mAcc']:.2f}  "
             f"on {results['num_images']} images"]
    if results.get("identity_step"):
        lines.append(f"note: --identity-step {results['identity_step']}: that step's attention was replaced by "
                     "identity (an ablation); the number measures the model without it")
    if own_data:
        lines.append(f"your own data (folder data set at {dataset_root}): no published figure to compare with")
        if (dataset_root / "SAMPLE_DATA.txt").is_file():
            lines.append("note: this is synthetic sample data; the numbers say nothing about real images")
        return "\n".join(lines)
    lines.append(f"published ({entry.name}): mIoU {entry.mIoU:.2f} single-scale, "
                 f"{entry.mIoU_ms_flip:.2f} ms+flip; compare with {published:.2f} ({kind})")
    if (dataset_root / "SAMPLE_DATA.txt").is_file():
        lines.append("note: this is synthetic sample data; the numbers say nothing about the published model")
    if tuple(results["settings"]["scale"]) != entry.test.scale:
        lines.append(f"note: test scale {results['settings']['scale']} overrides the zoo's; not comparable")
    if results["settings"]["limit"] is not None:
        lines.append("note: --limit evaluates a subset; the published figure is over the whole split")

    return "\n".join(lines)


def recipe_scale(meta: dict) -> tuple[int, int] | None:
    """The validation scale of the recipe a checkpoint records it was trained with (None: no recipe, or none set):
    a model trained on small pictures (the teaching model: 160 px) is evaluated at the scale it learnt."""
    scale = (meta.get("config") or {}).get("val_scale") if meta.get("recipe") else None
    return tuple(scale) if scale else None


def run(args: argparse.Namespace) -> int:
    from isanet.analysis.identity_step import check_isa, identity_step
    from isanet.data.folder import dataset_kind
    from isanet.data.registry import build_dataset
    from isanet.evaluation.evaluate import evaluate_predictor
    from isanet.evaluation.inference import MemoryCap, Predictor
    from isanet.evaluation.metrics import format_confused, format_table, most_confused
    from isanet.io.atomic import write_json_atomic
    from isanet.io.checkpoint import load_model_for
    from isanet.models import zoo
    from isanet.runtime import resolve_device

    with usage_checks():  # the options, the data and the weights: all before the evaluation
        entry = zoo.get_entry(args.name)
        device = resolve_device(args.device, "--device")
        kind = dataset_kind(args.dataset, args.data_root, zoo.short_dataset_name(entry))
        if args.skip_bad and kind != "folder":
            raise ValueError(f"--skip-bad applies to folder data sets only, not {kind}")
        dataset = build_dataset(kind, args.data_root, args.split, **({"skip_bad": True} if args.skip_bad else {}))
        model, meta = load_model_for(args.checkpoint, entry.name, num_classes=dataset.num_classes)
        if args.identity_step:
            check_isa(model)
        settings = entry.test.override(args.mode, args.scale or recipe_scale(meta))
        predictor = Predictor(model, settings, args.precision, device, args.optimize, precision_option="--precision",
                              memory_cap=MemoryCap(*memory_cap(args)))
        if not args.ms_flip:  # multi-scale + flip has no test-scale resize: each picture is estimated alone
            predictor.check_test_scale()
    note = options.short_run_note(min(len(dataset), args.limit or len(dataset))) if args.optimize else None
    if note:
        print(note)
    with identity_step(model, args.identity_step) if args.identity_step else contextlib.nullcontext():
        results = evaluate_predictor(predictor, dataset, ms_flip=args.ms_flip, limit=args.limit)
    results["identity_step"] = args.identity_step
    if not sum(map(sum, results["confusion"])):
        raise ValueError(f"no labelled pixel in {results['num_images']} images of {dataset.root} {args.split}: "
                         "every mask pixel is 255 (ignore), so there is no mIoU to report")
    own_data = kind == "folder"
    print(format_table({key: list(results[key].values()) for key in ("IoU", "Acc")}, dataset.CLASSES))
    print(format_confused(most_confused(results["confusion"], dataset.CLASSES)))
    print(summary(results, entry, dataset.root, own_data))
    if args.confusion:
        from isanet.notebook.confusion_plot import plot_confusion

        plot_confusion(results["confusion"], dataset.CLASSES, title=f"{entry.name}\non {dataset.root.name} "
                       f"{args.split} ({results['num_images']} images)", path=args.confusion)
        print(f"wrote {args.confusion}")
    if args.out:
        record = {"model": entry.name, "checkpoint": str(args.checkpoint), "data_root": str(dataset.root),
                  "dataset": "folder" if own_data else entry.dataset, "split": args.split,
                  "classes": list(dataset.CLASSES), **results}
        if getattr(dataset, "skipped", None):
            record["skipped"] = dataset.skipped
        if not own_data:
            record["published"] = {"mIoU": entry.mIoU, "mIoU_ms_flip": entry.mIoU_ms_flip}
        print(f"wrote {write_json_atomic(record, args.out)}")
    return 0
