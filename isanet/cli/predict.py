"""``isanet predict INPUT --model NAME --checkpoint FILE --out DIR``: segment your own pictures and videos.

INPUT is an image, a folder of images (and videos), or a video. Each image gives ``STEM_overlay.png`` (the
prediction over the picture, with a legend of the classes present) and ``STEM_label.png`` (class ids); a video
gives ``STEM_overlay.mp4``. The zoo entry ``NAME`` decides the test pipeline (resize, normalisation, whole or
slide) and, unless the checkpoint carries its own, the class names and palette. A file that cannot be read gets
one line naming it and the rest go on; the exit status is 1 when anything failed.
"""

from __future__ import annotations

import argparse

from isanet.cli.errors import usage_checks
from isanet.cli.options import (
    add_checkpoint,
    add_device,
    add_input,
    add_memory_cap,
    add_optimize,
    add_output,
    add_precision,
    add_scale,
    memory_cap,
    short_run_note,
)
from isanet.limits import bounded_float

SHOW_WRITTEN = 20  # a folder of thousands of pictures should not print thousands of lines


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="predict an image, a folder of images or a video; write overlays")
    add_input(parser, "input", help="an image, a folder of images, or a video (mp4, avi, ...)")
    parser.add_argument("--model", required=True, help="zoo name: the architecture and test pipeline")
    add_checkpoint(parser, required=True, help="weights file (a published one, or one the kit wrote)")
    add_output(parser, "--out", kind="dir", required=True, help="folder for the outputs (created if missing)")
    add_options(parser)
    parser.set_defaults(func=run)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The prediction choices (each one a field of :class:`isanet.evaluation.predict_files.PredictOptions`)."""
    group = parser.add_argument_group("prediction")
    group.add_argument("--opacity", type=bounded_float(0, 1), default=0.5,
                       help="colour share of the overlay, 0-1 (default: 0.5)")
    group.add_argument("--mode", choices=("whole", "slide"), help="override the zoo entry's test mode")
    group.add_argument("--ms-flip", action="store_true", help="mmseg's multi-scale (0.5-1.75) + flip TTA")
    add_scale(group, help="override the test resize (quick runs on small pictures; not the zoo's setting)")
    add_device(group)
    add_precision(group, help="bf16: ~2x faster on CPUs with AVX-512 BF16/AMX and on GPUs; fp16: GPUs; an "
                              "unsupported choice falls back to fp32 with a warning (default: %(default)s)")
    add_optimize(group)
    add_memory_cap(group, "a picture")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")


def options_from(args: argparse.Namespace):
    from isanet.evaluation.inference import MemoryCap
    from isanet.evaluation.predict_files import PredictOptions
    from isanet.runtime import resolve_device

    return PredictOptions(mode=args.mode, scale=tuple(args.scale) if args.scale else None, ms_flip=args.ms_flip,
                          opacity=args.opacity, device=resolve_device(args.device, "--device"),
                          progress=not args.no_progress, precision=args.precision,
                          optimize=args.optimize, memory_cap=MemoryCap(*memory_cap(args)))


def run(args: argparse.Namespace) -> int:
    from isanet.evaluation.predict_files import PredictionWriter, is_video, list_inputs, predict_inputs
    from isanet.io.checkpoint import load_model_for
    from isanet.models import zoo

    with usage_checks():
        options = options_from(args)
        entry = zoo.get_entry(args.model)
        inputs = list_inputs(args.input)  # a missing or empty INPUT fails here, before the model is loaded
        model, meta = load_model_for(args.checkpoint, entry.name)
        writer = PredictionWriter.from_entry(model, entry, options, meta.get("dataset_meta"),
                                             precision_option="--precision")  # checks --mode, --scale, the cap
    if "RANDOM" in str(meta.get("note", "")):
        print(f"note: {args.checkpoint} holds RANDOM WEIGHTS ({meta['note']}): the overlays show no real prediction")
    note = short_run_note(len(inputs)) if options.optimize and not any(map(is_video, inputs)) else None
    if note:
        print(note)
    summary = predict_inputs(writer, args.input, args.out)
    for path in summary.written[:SHOW_WRITTEN]:
        print(f"wrote {path}")
    if len(summary.written) > SHOW_WRITTEN:
        print(f"... and {len(summary.written) - SHOW_WRITTEN} more files")
    print(f"{summary.line()} (outputs in {args.out})")
    return 1 if summary.failed else 0
