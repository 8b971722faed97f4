"""Training in bf16 against fp32 on CPU: step time side by side, and the loss curves of the same run.

Two trainers with the same seed, data, weights and recipe, one in fp32 and one with ``precision="bf16"``
(autocast: convolutions and matmuls in bf16, losses and BatchNorm statistics in fp32), advance **in lockstep**:
iteration i of fp32, iteration i of bf16, iteration i+1 of fp32, ... so load from other processes falls on
both alike. Each iteration is timed with the process's CPU time (``--threads 1``: steady on a busy machine);
the median step times give the speed-up (evaluation iterations excluded). The losses are compared iteration by
iteration (the mean and largest relative difference, and of 20-iteration running means), with the validation
mIoU at the evaluations, and both curves are drawn in one figure.

    .venv/bin/python benchmarks/train_precision.py --threads 1 --png /tmp/bf16_vs_fp32.png          # sample fine-tune
    .venv/bin/python benchmarks/train_precision.py --threads 1 --iters 8 --full-model --crop 256 --eval-every 0
                                                            # step time of the recipe's R-50 on 256x256 crops

The data is ``isanet sample-data voc`` (synthetic) with :data:`~isanet.engine.recipes.VOC_SAMPLE_DATA`, the
settings the ``voc-sample`` recipe's (tiny R-18, 64x64 crops) unless changed; bf16 needs a CPU with native bf16
(AVX-512 BF16 or AMX), elsewhere it falls back to fp32 with a warning and the comparison says nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from isanet.cli import parse_guarded
from isanet.cli.options import add_output
from isanet.data.registry import write_sample_dataset
from isanet.engine.recipes import VOC_SAMPLE, VOC_SAMPLE_DATA
from isanet.engine.trainer import TrainConfig, Trainer

PRECISIONS = ("fp32", "bf16")


def running_mean(values: list[float], window: int) -> list[float]:
    return [statistics.fmean(values[max(0, i - window + 1):i + 1]) for i in range(len(values))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=VOC_SAMPLE.iters)
    parser.add_argument("--eval-every", type=int, default=VOC_SAMPLE.eval_every)
    parser.add_argument("--crop", type=int, default=VOC_SAMPLE.crop_size[0], help="square crop side")
    parser.add_argument("--full-model", action="store_true", help="the recipe's R-50 instead of the tiny R-18")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 for a steady CPU-time clock)")
    add_output(parser, "--png", kind="file", suffixes=(".png",), help="save both loss curves here")
    args = parse_guarded(parser, argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    scratch = tempfile.TemporaryDirectory(prefix="isanet_bf16_")
    root = Path(scratch.name)
    data = write_sample_dataset("voc", root / "data", seed=args.seed, **VOC_SAMPLE_DATA)
    settings = {**VOC_SAMPLE.config_fields(), "iters": args.iters, "eval_every": args.eval_every,
                "eval_at_start": bool(args.eval_every), "crop_size": (args.crop, args.crop),
                "save_every": args.iters, "keep_checkpoints": 1, "progress": False}
    if args.full_model:
        settings["model_overrides"] = {}
    trainers = {precision: Trainer(TrainConfig(data_root=data, work_dir=root / precision, seed=args.seed,
                                               device="cpu", precision=precision, **settings))
                for precision in PRECISIONS}
    runs = {precision: trainer.run() for precision, trainer in trainers.items()}
    records: dict[str, list[dict]] = {precision: [] for precision in PRECISIONS}
    step_times: dict[str, list[float]] = {precision: [] for precision in PRECISIONS}
    done = False
    while not done:
        for precision, run in runs.items():
            start = time.process_time()
            record = next(run, None)
            elapsed = time.process_time() - start
            if record is None:
                done = True
                continue
            records[precision].append(record)
            if "loss" in record and "mIoU" not in record:
                step_times[precision].append(elapsed)
    for trainer in trainers.values():
        trainer.close()
    fp32_step, bf16_step = (statistics.median(step_times[p]) for p in PRECISIONS)
    losses = {p: [r["loss"] for r in records[p] if "loss" in r] for p in PRECISIONS}
    evals = {p: [(r["iter"], r["mIoU"]) for r in records[p] if "mIoU" in r] for p in PRECISIONS}
    relative = [abs(b - a) / a for a, b in zip(losses["fp32"], losses["bf16"])]
    window = 20
    smooth = {p: running_mean(losses[p], window) for p in PRECISIONS}
    smooth_relative = [abs(b - a) / a for a, b in zip(smooth["fp32"], smooth["bf16"])]
    model = "R-50 (recipe)" if args.full_model else "tiny R-18"
    print(f"{model}, {args.crop}x{args.crop} crops, batch {settings['batch_size']}, {args.iters} iterations, seed "
          f"{args.seed}, synthetic VOC sample, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"precision actually run: {', '.join(trainers[p].optimisation.precision for p in PRECISIONS)}")
    print(f"step time (median CPU time, lockstep): fp32 {fp32_step * 1e3:.1f} ms, bf16 {bf16_step * 1e3:.1f} ms: "
          f"bf16 {fp32_step / bf16_step:.2f}x faster (target >= 1.5x)")
    print(f"loss: first {losses['fp32'][0]:.4f} / {losses['bf16'][0]:.4f}, last {losses['fp32'][-1]:.4f} / "
          f"{losses['bf16'][-1]:.4f} (fp32 / bf16); per iteration |bf16-fp32|/fp32 mean "
          f"{statistics.fmean(relative):.3f} max {max(relative):.3f}; {window}-iteration running means: mean "
          f"{statistics.fmean(smooth_relative):.3f} max {max(smooth_relative):.3f}")
    for (iteration, fp32_miou), (_, bf16_miou) in zip(evals["fp32"], evals["bf16"]):
        print(f"  iteration {iteration:4d}: mIoU fp32 {fp32_miou:6.2f}  bf16 {bf16_miou:6.2f}")
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from isanet.notebook.plots import save_figure

        fig, ax = plt.subplots(figsize=(7, 4))
        for precision in PRECISIONS:
            ax.plot(range(1, len(smooth[precision]) + 1), smooth[precision],
                    label=f"{precision} ({window}-iteration running mean)")
        ax.set(xlabel="iteration", ylabel="training loss", title=f"{model}: bf16 vs fp32, same run")
        ax.legend()
        save_figure(fig, args.png, dpi=120, bbox_inches="tight")
        print(f"saved {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
