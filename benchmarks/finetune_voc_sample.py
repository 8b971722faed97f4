"""A notebook-sized fine-tune on the synthetic VOC sample data, on CPU: does the trainer learn?

Writes ``isanet sample-data voc`` (synthetic: it says nothing about the published models) with the sizes of
:data:`isanet.engine.recipes.VOC_SAMPLE_DATA` (objects of the first 5 VOC object classes only), trains the tiny
R-18 ISANet of the ``voc-sample`` recipe (:data:`isanet.engine.recipes.VOC_SAMPLE`) from random weights with the
published recipe's loss,
optimiser, poly schedule and augmentation (only the sizes, the iterations and the learning rate changed),
evaluates on the validation split before training and every ``eval_every`` iterations, prints the start and
end mIoU and the wall time, and saves the loss/mIoU curve.

    .venv/bin/python benchmarks/finetune_voc_sample.py --png /tmp/finetune_curve.png --threads 1
    .venv/bin/python benchmarks/finetune_voc_sample.py --png curve.png --iters 200 --lr 0.05   # try settings

The exit status is 1 when the final mIoU is not at least ``--min-gain`` points above the starting one.
Measured on the shared 2-core machine, torch 2.13, ``--threads 1``, default settings (300 iterations): seed 0,
mIoU 0.00 -> 95.95; ``--seed 1``: 0.67 -> 47.68; ``--seed 2``: 0.00 -> 78.65 (54-210 s each, depending on the
machine's load). An earlier record of this docstring (67.23 / 86.22 / 53.05) could not be reproduced: the code of
that commit gives 95.95 for seed 0 today as well, so the difference lies outside the code (most likely a sample
data cache written by an older generator). Why five classes: with all twenty
(``--object-classes 20``) the same model learns much more slowly from random weights: seed 1 reaches about 7
after 150 iterations and 15 after 600; eight classes give 26 (seed 0) and 36 (seed 1) after 300.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from isanet.cli import parse_guarded
from isanet.cli.options import add_output
from isanet.data.registry import write_sample_dataset
from isanet.engine.recipes import VOC_SAMPLE
from isanet.engine.recipes import VOC_SAMPLE_DATA as SAMPLE_DATA
from isanet.engine.trainer import TrainConfig, train
from isanet.limits import MAX_LR, bounded_float
from isanet.notebook.plots import plot_training_curves, save_figure


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = VOC_SAMPLE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output(parser, "--png", kind="file", suffixes=(".png",), required=True,
               help="where to save the training-curve figure")
    add_output(parser, "--work-dir", kind="dir", help="run folder (default: a temporary one)")
    parser.add_argument("--iters", type=int, default=defaults.iters)
    parser.add_argument("--lr", type=bounded_float(0, MAX_LR, low_open=True), default=defaults.lr)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--crop", type=int, default=defaults.crop_size[0], help="square crop side")
    parser.add_argument("--scale", type=int, nargs=2, default=defaults.resize_scale, metavar=("LONG", "SHORT"),
                        help="RandomResize box of training and the test Resize box")
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--num-train", type=int, default=SAMPLE_DATA["num_train"])
    parser.add_argument("--num-val", type=int, default=SAMPLE_DATA["num_val"])
    parser.add_argument("--object-classes", type=int, default=SAMPLE_DATA["object_classes"],
                        help="VOC object classes the sample's objects are drawn from (20: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--min-gain", type=bounded_float(0, 100), default=30.0, help="required mIoU gain in points")
    return parse_guarded(parser, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    scratch = tempfile.TemporaryDirectory(prefix="isanet_finetune_")
    root = Path(scratch.name)
    sample = {**SAMPLE_DATA, "num_train": args.num_train, "num_val": args.num_val,
              "object_classes": args.object_classes}
    data = write_sample_dataset("voc", root / "data", seed=args.seed, **sample)
    settings = {**VOC_SAMPLE.config_fields(), "eval_at_start": True, "iters": args.iters, "lr": args.lr,
                "batch_size": args.batch_size, "crop_size": (args.crop, args.crop), "eval_every": args.eval_every,
                "resize_scale": tuple(args.scale), "val_scale": tuple(args.scale),
                "save_every": max(args.iters // 3, 1), "keep_checkpoints": 1}
    config = TrainConfig(data_root=data, work_dir=args.work_dir or root / "run", seed=args.seed, device="cpu",
                         **settings)
    started = time.perf_counter()
    records: list[dict] = []
    train(config, on_log=records.append)
    wall = time.perf_counter() - started
    evals = [(record["iter"], record["mIoU"]) for record in records if "mIoU" in record]
    (first_iter, start), (last_iter, end) = evals[0], evals[-1]
    ax, _ = plot_training_curves(records)
    save_figure(ax.figure, args.png, dpi=120, bbox_inches="tight")
    print(f"sample data (seed {args.seed}): {sample}")
    print(f"settings: {settings}")
    print(f"mIoU {start:.2f} (iteration {first_iter}) -> {end:.2f} (iteration {last_iter}), best "
          f"{max(value for _, value in evals):.2f}; {args.iters} iterations in {wall:.0f} s on "
          f"{torch.get_num_threads()} CPU thread(s); curve saved to {args.png}")
    return 0 if end - start >= args.min_gain else 1


if __name__ == "__main__":
    sys.exit(main())
