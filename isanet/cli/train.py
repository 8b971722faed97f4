"""``isanet train NAME``: fine-tune a zoo architecture with its published recipe (see :mod:`isanet.engine.trainer`).

Options left out take the zoo entry's value (a fresh run) or the resumed checkpoint's (``--resume``). Under
``torchrun --nproc_per_node N -m isanet.cli train ...`` it trains with DDP; only rank 0 prints and writes.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Iterator

from isanet.cli.errors import USER_ERRORS, error_message, usage_checks
from isanet.cli.options import add_device, add_input, add_output, add_precision, add_scale
from isanet.data.registry import DATASETS
from isanet.engine.recipes import RECIPES
from isanet.limits import MAX_IMAGE_SIDE, MAX_LR, bounded_float, bounded_int, non_negative_int, positive_int
from isanet.models.heads import HEADS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="fine-tune with the published recipe (resumable, bf16/fp16, DDP)",
        description="Fine-tune a zoo architecture with its published recipe. Options left out take the zoo entry's "
                    "value, or with --resume the checkpoint's. Launch under torchrun --nproc_per_node N for DDP.")
    parser.add_argument("name", help="zoo name (1.x or legacy 0.x), e.g. isanet_r50-d8_4xb4-20k_voc12aug-512x512")
    add_input(parser, "--data-root", required=True,
                        help="the data set's folder (e.g. data/VOCdevkit, or your own folder data set's root)")
    parser.add_argument("--dataset", choices=tuple(DATASETS),
                        help="how to read --data-root (default: folder when it holds classes.txt, images/ and "
                             "masks/, else the entry's data set); a folder data set sets the number of classes")
    parser.add_argument("--skip-bad", action="store_true",
                        help="folder data set: leave bad image/mask pairs out, a warning each, instead of stopping")
    add_output(parser, "--work-dir", kind="dir", required=True, help="folder for log.jsonl and iter_N.pth / latest.pth")
    parser.add_argument("--iters", type=positive_int, help="iterations (default: the entry's schedule)")
    parser.add_argument("--crop", type=bounded_int(8, MAX_IMAGE_SIDE), nargs=2, metavar=("H", "W"),
                        help="crop size (default: the entry's)")
    add_scale(parser, help="training RandomResize box and test scale (default: the entry's; shrink it for small "
                           "images)")
    parser.add_argument("--batch-size", type=bounded_int(1, 4096),
                        help="images per process (default: the entry's per-GPU batch)")
    parser.add_argument("--lr", type=bounded_float(0, MAX_LR, low_open=True),
                        help="base learning rate (default: the entry's, 0.01)")
    parser.add_argument("--warmup-iters", type=non_negative_int,
                        help="linear warm-up of the learning rate over the first N iterations, from 0.1x "
                             "(default: the recipe's, else 0: none)")
    add_input(parser, "--init", help="starting weights: a zoo checkpoint (classifier re-initialised when the "
                                       "classes differ, e.g. for your own classes.txt) or an ImageNet ResNet "
                                       "backbone checkpoint")
    parser.add_argument("--recipe", choices=sorted(RECIPES),
                        help="a named recipe over the entry's (see isanet.engine.recipes): " + "; ".join(
                            f"{name}: {recipe.description}" for name, recipe in sorted(RECIPES.items())))
    parser.add_argument("--tiny", action="store_true",
                        help="a tiny R-18 version of the architecture (ISANetConfig.tiny): smoke runs on a CPU")
    parser.add_argument("--head", choices=tuple(HEADS),
                        help="decode head (default: the entry's, isa): " + "; ".join(
                            f"{name}: {spec.description}" for name, spec in HEADS.items()))
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --work-dir from its newest checkpoint")
    parser.add_argument("--save-every", type=positive_int, help="checkpoint interval in iterations (default: iters/10)")
    parser.add_argument("--keep", type=positive_int, help="keep only the newest N iter_N.pth files (default: all)")
    parser.add_argument("--eval-every", type=non_negative_int,
                        help="evaluation interval (default: iters/10; 0 = never)")
    parser.add_argument("--limit-val", type=positive_int, help="evaluate on the first N validation images only")
    parser.add_argument("--seed", type=non_negative_int, help="random seed (default: 0)")
    add_precision(parser, default=None,
                  help="autocast of the forward passes: bf16 on CPUs with AVX-512 BF16/AMX (1.35x on the tiny "
                             "R-18, 2.2x on R-50 per step) and GPUs, fp16 + GradScaler on GPUs; unsupported choices "
                             "train in fp32 with a warning; default fp32, or the resumed run's")
    parser.add_argument("--amp", action="store_true",
                        help="deprecated: --precision bf16 on a GPU that has it, else fp16; ignored on CPU")
    add_device(parser, default=None, auto=False, help="default: cuda when available")
    parser.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes (GPUs)")
    parser.add_argument("--num-workers", type=bounded_int(0, 256), default=0,
                        help="data loading processes (default: 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


#: The option of each :class:`~isanet.engine.config.TrainConfig` field that has one: the one place where the
#: engine's field names (its errors and notes say ``TrainConfig.iters``) become the options a user of this
#: command typed (``--iters``). Fields without an option (``stop_after``, ``aux_weight``...) keep their name.
OPTIONS = {"data_root": "--data-root", "work_dir": "--work-dir", "recipe": "--recipe", "iters": "--iters",
           "crop_size": "--crop", "batch_size": "--batch-size", "lr": "--lr", "warmup_iters": "--warmup-iters",
           "seed": "--seed",
           "save_every": "--save-every", "keep_checkpoints": "--keep", "eval_every": "--eval-every",
           "limit_val": "--limit-val", "resize_scale": "--scale", "val_scale": "--scale", "init": "--init",
           "resume": "--resume", "device": "--device", "precision": "--precision", "sync_bn": "--sync-bn",
           "num_workers": "--num-workers", "dataset": "--dataset", "skip_bad": "--skip-bad"}
FIELD = re.compile(r"TrainConfig\.(\w+)")


def option_names(message: str) -> str:
    """``message`` with every ``TrainConfig.FIELD`` that has an option named by that option."""
    return FIELD.sub(lambda match: OPTIONS.get(match.group(1), match.group(0)), message)


@contextlib.contextmanager
def naming_options() -> Iterator[None]:
    """Inside: an error whose message names :class:`TrainConfig` fields is raised again naming the options, as a
    ValueError (every user error prints one line and exits with the same status, see :mod:`isanet.cli.errors`)."""
    try:
        yield
    except USER_ERRORS as error:
        message = error_message(error)
        if option_names(message) == message:
            raise
        raise ValueError(option_names(message)) from error


def config_from_args(args: argparse.Namespace):
    """The :class:`~isanet.engine.trainer.TrainConfig` the options describe."""
    from isanet.engine.trainer import TrainConfig
    from isanet.models.config import TINY

    own = dict(RECIPES[args.recipe].model_overrides) if args.recipe else {}
    if args.tiny and own and own != TINY:  # two architectures: the mix would be neither
        raise ValueError(f"--tiny and --recipe {args.recipe} each choose the architecture (the recipe's: "
                         f"{RECIPES[args.recipe].description}): give one or the other")
    overrides = {**(TINY if args.tiny else {}), **({"head": args.head} if args.head else {})}
    return TrainConfig(name=args.name, recipe=args.recipe, data_root=args.data_root, work_dir=args.work_dir,
                       iters=args.iters,
                       crop_size=tuple(args.crop) if args.crop else None,
                       resize_scale=tuple(args.scale) if args.scale else None,
                       val_scale=tuple(args.scale) if args.scale else None, batch_size=args.batch_size, lr=args.lr,
                       warmup_iters=args.warmup_iters,
                       seed=args.seed, save_every=args.save_every, keep_checkpoints=args.keep,
                       eval_every=args.eval_every, limit_val=args.limit_val, init=args.init, resume=args.resume,
                       device=args.device, precision=amp_precision(args),
                       sync_bn=args.sync_bn, num_workers=args.num_workers, progress=not args.no_progress,
                       dataset=args.dataset, skip_bad=args.skip_bad, model_overrides=overrides or None)


def amp_precision(args: argparse.Namespace) -> str | None:
    """``--precision``, or what the deprecated ``--amp`` meant (CUDA mixed precision) when it is given alone."""
    import torch

    from isanet.runtime import resolve_device

    if not args.amp or args.precision is not None:
        return args.precision
    if resolve_device(args.device, "--device") != "cuda":
        print("note: --amp is ignored on CPU: it means CUDA mixed precision (use --precision bf16 on a CPU with "
              "native bf16); training in fp32", file=sys.stderr)
        return None
    precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    print(f"note: --amp is deprecated: training with --precision {precision}", file=sys.stderr)
    return precision


def run(args: argparse.Namespace) -> int:
    from isanet.engine.trainer import Trainer, run_to_end

    # the options, data, work folder and --init weights, all checked before the first step
    with usage_checks(), naming_options():
        trainer = Trainer(config_from_args(args), wording=option_names)
    with naming_options():
        summary = run_to_end(trainer)
    if summary["rank"] == 0:
        evaluation = summary["last_eval"]
        score = f", mIoU {evaluation['mIoU']} at iteration {evaluation['iter']}" if evaluation else ""
        print(f"trained to iteration {summary['iter']}/{summary['max_iters']} in {summary['wall_time_s']} s{score}; "
              f"last checkpoint {summary['last_checkpoint'] or '(none)'}")
    return 0
