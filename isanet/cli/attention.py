"""``isanet attention IMAGE (--model NAME [--checkpoint FILE] | --teaching) --out page.html``: the attention
explorer as one standalone HTML page for your own picture (open it from disk in any browser; no kernel, no
network).

The picture is resized to ``--width`` (keep-ratio), run once through the model with its attention kept
(:func:`isanet.analysis.probe.capture`), and ISA's weights plus the dense block's queries and keys are written
into the page (:mod:`isanet.notebook.explorer_html`). Without ``--checkpoint`` the model has random weights, and
the page says so. ``--teaching`` takes the shipped teaching model instead (trained on the synthetic context
task, the one notebook 02 opens on), and the page says that it knows only those scenes.
"""

from __future__ import annotations

import argparse

from isanet.cli.errors import UsageError, usage_checks
from isanet.cli.options import add_checkpoint, add_device, add_input, add_output
from isanet.engine.recipes import TEACHING
from isanet.limits import MAX_EXPLORER_WIDTH, bounded_int, non_negative_int

DEFAULT_WIDTH = 512
TEACHING_WIDTH = TEACHING.val_scale[1]  # the teaching pictures' width: the one scale that model knows


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("attention", help="write a standalone HTML attention explorer for an image")
    add_input(parser, "image", help="a picture (jpg, png, ...)")
    parser.add_argument("--model", help="zoo name: the architecture (and normalisation); required unless "
                                         "--teaching")
    add_checkpoint(parser, help="weights file; without it: random weights (the page says so)")
    parser.add_argument("--teaching", action="store_true",
                        help="the shipped teaching model (ISA trained on the synthetic context task) instead of "
                             "--model / --checkpoint")
    parser.add_argument("--width", type=bounded_int(8, MAX_EXPLORER_WIDTH),
                        help=f"resize the picture to this width first, 8 to {MAX_EXPLORER_WIDTH} (default: "
                             f"{DEFAULT_WIDTH}, with --teaching the {TEACHING_WIDTH} px it was trained on; the "
                             "page and the dense queries/keys grow with its square)")
    parser.add_argument("--pixel", type=non_negative_int, nargs=2, metavar=("ROW", "COL"),
                        help="first query (resized image)")
    parser.add_argument("--seed", type=non_negative_int,
                        help="seed of the random weights, without --checkpoint and --teaching (default: 0)")
    add_device(parser)
    add_output(parser, "--out", kind="file", suffixes=(".html",), required=True, help="the HTML file to write")
    parser.set_defaults(func=run)


def check_model_choice(args: argparse.Namespace) -> None:
    """Exactly one source of weights: ``--teaching``, or ``--model`` (with or without ``--checkpoint``); a
    ``--seed`` only for the random weights it seeds."""
    if args.teaching and (args.model or args.checkpoint):
        raise UsageError("--teaching replaces --model and --checkpoint: give one or the other")
    if not args.teaching and not args.model:
        raise UsageError("--model is required (a zoo name), unless --teaching picks the shipped teaching model")
    if args.seed is not None and (args.teaching or args.checkpoint):
        trained = "--teaching" if args.teaching else "--checkpoint"
        raise UsageError(f"--seed {args.seed} seeds random weights, and {trained} gives trained ones: drop --seed")


def checkpoint_note(meta: dict) -> str:
    """The warning a page must carry when the checkpoint holds random weights (its meta says so)."""
    note = str(meta.get("note", ""))
    return f"{note}: the maps show the pattern ISA allows, not learned attention." if "RANDOM" in note else ""


def run(args: argparse.Namespace) -> int:
    import torch

    from isanet.analysis.probe import capture
    from isanet.data.datasets import read_image
    from isanet.data.transforms import normalize, resize_image
    from isanet.engine.config import DEFAULT_MODEL
    from isanet.io.checkpoint import load_model_for
    from isanet.models import zoo
    from isanet.notebook.explorer_html import describe, save_explorer_html
    from isanet.notebook.model_menu import teaching_choice
    from isanet.runtime import resolve_device

    check_model_choice(args)
    with usage_checks():
        entry = zoo.get_entry(DEFAULT_MODEL if args.teaching else args.model)  # the teaching model's normalisation
        device = resolve_device(args.device, "--device")
        image = read_image(args.image)
        teaching = teaching_choice() if args.teaching else None
    target = args.width or (TEACHING_WIDTH if teaching else DEFAULT_WIDTH)
    height, width = image.shape[:2]
    size = (max(1, round(height * target / width)), target)
    image = resize_image(image, size) if size != (height, width) else image
    if args.pixel and not (args.pixel[0] < size[0] and args.pixel[1] < size[1]):
        with usage_checks():
            raise ValueError(f"--pixel {args.pixel[0]} {args.pixel[1]}: outside the {size[0]}x{size[1]} resized "
                             f"picture; expected ROW 0 to {size[0] - 1} and COL 0 to {size[1] - 1}")
    if teaching:
        with usage_checks():
            model = teaching.load()
        label, note = teaching.label, teaching.note
    elif args.checkpoint:
        with usage_checks():
            model, meta = load_model_for(args.checkpoint, entry.name)
        label, note = f"{entry.name} with {args.checkpoint}", checkpoint_note(meta)
    else:
        seed = args.seed or 0
        torch.manual_seed(seed)
        model = zoo.build_model(entry.name)
        label = f"random weights ({entry.name}, seed {seed})"
        note = "RANDOM WEIGHTS (no --checkpoint): the maps show the pattern ISA allows, not learned attention."
    batch = normalize(image, entry.test.mean, entry.test.std)[None].to(device)
    captured = capture(model.to(device).eval(), batch)
    pixel = tuple(args.pixel) if args.pixel else None
    sizes = save_explorer_html(captured, image, args.out, label, note, pixel)
    print(f"wrote {args.out} ({image.shape[0]}x{image.shape[1]} picture): {describe(sizes)}")
    if note:
        print(f"note: {note}")
    return 0
