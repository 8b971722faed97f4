"""``isanet attention IMAGE (--model NAME [--checkpoint FILE] | --teaching) --out page.html``: the attention
explorer as one standalone HTML page for your own picture (open it from disk in any browser; no kernel, no
network).

The picture is resized to ``--width`` (keep-ratio), run once through the model with its attention kept
(:func:`isanet.analysis.probe.capture`), and ISA's weights plus the dense block's queries and keys are written
into the page (:mod:`isanet.notebook.explorer_html`). Without ``--checkpoint`` the model has random weights, and
the page says so.

``--teaching`` writes the **live page** of the shipped teaching model instead (:mod:`isanet.notebook.live_page`;
trained on the synthetic context task, the one notebook 02 opens on): the page and, beside it, ``PAGE_files/``
(the model as ONNX and onnxruntime-web), so that any static server of the folder runs the model in the browser
on the picture the reader edits. IMAGE may then be omitted: the page offers context validation pictures. A
picture of your own is resized to ``--width`` (160, the size the model knows), and the page finds its beacon
in the model's own prediction.
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
    add_input(parser, "image", nargs="?", help="a picture (jpg, png, ...); with --teaching it may be omitted "
                                                 "(the live page then offers context validation pictures)")
    parser.add_argument("--model", help="zoo name: the architecture (and normalisation); required unless "
                                         "--teaching")
    add_checkpoint(parser, help="weights file; without it: random weights (the page says so)")
    parser.add_argument("--teaching", action="store_true",
                        help="the live page of the shipped teaching model (ISA trained on the synthetic context "
                             "task; it runs in the browser when the page is served over http) instead of --model "
                             "/ --checkpoint")
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
    if not args.teaching and args.image is None:
        raise UsageError("IMAGE is required, unless --teaching (whose live page offers context pictures)")
    if args.seed is not None and (args.teaching or args.checkpoint):
        trained = "--teaching" if args.teaching else "--checkpoint"
        raise UsageError(f"--seed {args.seed} seeds random weights, and {trained} gives trained ones: drop --seed")


def checkpoint_note(meta: dict) -> str:
    """The warning a page must carry when the checkpoint holds random weights (its meta says so)."""
    note = str(meta.get("note", ""))
    return f"{note}: the maps show the pattern ISA allows, not learned attention." if "RANDOM" in note else ""


def run(args: argparse.Namespace) -> int:
    check_model_choice(args)
    return live_page(args) if args.teaching else explorer_page(args)


def read_resized(args: argparse.Namespace, default_width: int):
    """IMAGE read and resized to ``--width`` (keep-ratio; ``default_width`` without it), and ``--pixel`` checked
    against it."""
    from isanet.data.datasets import read_image
    from isanet.data.transforms import resize_image

    with usage_checks():
        image = read_image(args.image)
    target = args.width or default_width
    height, width = image.shape[:2]
    size = (max(1, round(height * target / width)), target)
    image = resize_image(image, size) if size != (height, width) else image
    if args.pixel and not (args.pixel[0] < size[0] and args.pixel[1] < size[1]):
        with usage_checks():
            raise ValueError(f"--pixel {args.pixel[0]} {args.pixel[1]}: outside the {size[0]}x{size[1]} resized "
                             f"picture; expected ROW 0 to {size[0] - 1} and COL 0 to {size[1] - 1}")
    return image


def live_page(args: argparse.Namespace) -> int:
    """``--teaching``: the live page of the teaching model, on IMAGE or on context validation pictures."""
    from isanet.notebook.live_page import Picture, save_live_page, save_teaching_live_page
    from isanet.notebook.model_menu import teaching_choice
    from isanet.notebook.teaching import teaching_test_settings

    settings = teaching_test_settings()
    query = tuple(args.pixel) if args.pixel else None
    with usage_checks():
        teaching = teaching_choice()
        if args.image is None:
            folder = save_teaching_live_page(args.out, query=query)
            what = "context validation pictures"
        else:
            image = read_resized(args, TEACHING_WIDTH)
            folder = save_live_page(args.out, teaching.load(), [Picture(args.image, image, None)], teaching.label,
                                    teaching.note, mean=settings.mean, std=settings.std, query=query)
            what = f"your {image.shape[0]}x{image.shape[1]} picture"
    print(f"wrote {args.out} and {folder} (the live page on {what}; serve the folder over http to run the model "
          "in the browser, e.g. python3 -m http.server)")
    print(f"note: {teaching.note}")
    return 0


def explorer_page(args: argparse.Namespace) -> int:
    """The standalone explorer of ``--model`` (random weights or ``--checkpoint``) on IMAGE."""
    import torch

    from isanet.analysis.probe import capture
    from isanet.data.transforms import normalize
    from isanet.io.checkpoint import load_model_for
    from isanet.models import zoo
    from isanet.notebook.explorer_html import describe, save_explorer_html
    from isanet.runtime import resolve_device

    with usage_checks():
        entry = zoo.get_entry(args.model)
        device = resolve_device(args.device, "--device")
    image = read_resized(args, DEFAULT_WIDTH)
    if args.checkpoint:
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
