"""``isanet sample-data`` and ``isanet sample-checkpoint``: synthetic inputs for trying every command offline.

``sample-data`` writes a small synthetic data set in a real layout; ``sample-checkpoint`` writes random weights
for a zoo architecture in mmseg's checkpoint format. Both say loudly that they are not the real thing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from isanet.cli.errors import usage_checks
from isanet.cli.options import add_output
from isanet.data.registry import DATASETS
from isanet.limits import MAX_IMAGE_SIDE, MAX_SAMPLE_IMAGES, bounded_int, non_negative_int


def add_parser(subparsers) -> None:
    data = subparsers.add_parser("sample-data", help="write a small synthetic data set in a real layout")
    data.add_argument("kind", choices=tuple(DATASETS),
                      help="a published layout; folder: the layout for your own data (see README); context: the "
                           "teaching task (the relay task: ISA needs both steps), in the folder layout, whose labels "
                           "need long-range context; context-one-hop: its contrast (a beacon in every long-range "
                           "group)")
    add_output(data, "--out", kind="dir", required=True,
               help="folder to write into (folder, context tasks: the data set's root, which must be new or empty)")
    count = bounded_int(1, MAX_SAMPLE_IMAGES)
    data.add_argument("--num-train", type=count, help="training images (default: 8; context tasks: 96)")
    data.add_argument("--num-val", type=count, help="validation images (default: 4; context tasks: 24)")
    data.add_argument("--size", type=bounded_int(16, MAX_IMAGE_SIDE),
                      help=f"image width in pixels, 16 to {MAX_IMAGE_SIDE} (default: 128; context tasks: 160, at "
                           "least 64)")
    data.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: %(default)s)")
    data.add_argument("--label-ids-only", action="store_true",
                      help="Cityscapes: write only *_gtFine_labelIds.png (readers convert them on the fly)")
    most = max(spec.max_object_classes or 0 for spec in DATASETS.values())
    data.add_argument("--object-classes", type=bounded_int(1, most), metavar="N",
                      help="VOC / folder: draw the objects from the first N object classes only (default: all 20 "
                           "for VOC, 4 of 7 for folder)")
    data.set_defaults(func=run_sample_data)

    checkpoint = subparsers.add_parser("sample-checkpoint", help="write random weights for a zoo model")
    checkpoint.add_argument("name", help="zoo name (1.x or legacy 0.x)")
    add_output(checkpoint, "--out", kind="file", suffixes=(".pth",), required=True, help="checkpoint file to write")
    checkpoint.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: %(default)s)")
    checkpoint.set_defaults(func=run_sample_checkpoint)


def run_sample_data(args: argparse.Namespace) -> int:
    from isanet.data.registry import write_sample_dataset
    sizes = {key: getattr(args, key) for key in ("num_train", "num_val", "size") if getattr(args, key) is not None}
    with usage_checks(errors=(ValueError,)):  # its refusals (not a sample, not empty); a failed write is OSError
        top = write_sample_dataset(args.kind, args.out, seed=args.seed, label_ids_only=args.label_ids_only,
                                   object_classes=args.object_classes, **sizes)
    sizes = {**DATASETS[args.kind].defaults, **sizes}
    print(f"wrote SYNTHETIC sample data ({args.kind}, {sizes['num_train']} train / {sizes['num_val']} val images) "
          f"to {top}")
    print("it is not the real data set: use it to try the commands, not to judge a model")
    return 0


def run_sample_checkpoint(args: argparse.Namespace) -> int:
    from isanet.data.sample_checkpoint import is_random_checkpoint, save_random_checkpoint
    from isanet.models.zoo import get_entry

    with usage_checks():
        name = get_entry(args.name).name
        if Path(args.out).exists() and not is_random_checkpoint(args.out):
            raise ValueError(f"--out {args.out}: already exists and is not a random-weights sample checkpoint; "
                             "refusing to write over it (choose another file name)")
    path = save_random_checkpoint(name, args.out, args.seed, written_by="`isanet sample-checkpoint`")
    print(f"wrote random-weights checkpoint {path} ({name}, seed {args.seed}); it predicts nothing useful")
    return 0
