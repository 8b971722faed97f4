"""The teaching recipe's training step, eager against ``torch.compile``'d, in fp32 and bf16 (CPU).

Four arms start from the same seeded weights (the model as the teaching recipe builds it:
``isanet.engine.recipes.TEACHING``'s overrides of the default zoo entry, the context task's classes) and take the
same 8-picture batches (random 160 x 160 crops of the context task's training pictures, the recipe's crop size;
the pictures are 160 px, so a crop is a whole picture, drawn at random), with SGD as the trainer builds it (the
entry's momentum and weight decay, the recipe's lr, held constant over these few steps) and the trainer's
losses (:func:`isanet.engine.trainer.seg_losses`, fp32 whatever the forward ran in). The arms advance **in
lockstep** (step i of every arm, then step i + 1), so load from other processes falls on all alike; each step is
timed on the process's CPU-time clock. A compiled arm's first step holds its compile and is reported apart;
the step-time ratio is of the medians of the remaining steps.

Decision rule (issue 26): use compile in training only if a precision's compiled step is >= 1.3x faster and its
losses match eager's within that precision's tolerance (:data:`LOSS_TOLERANCE`) over the first 20 steps.

    PYTHONPATH=. python benchmarks/train_compile.py --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

from isanet.analysis.compare import max_relative_series_difference
from isanet.data.registry import build_dataset
from isanet.engine.config import DEFAULT_MODEL, TrainConfig
from isanet.engine.recipes import TEACHING
from isanet.engine.trainer import seg_losses
from isanet.models.zoo import build_model, get_entry
from isanet.notebook.teaching import teaching_data, teaching_transform

PRECISIONS = ("fp32", "bf16")
#: Largest relative loss difference, compiled against eager, that counts as "the same training" over 20
#: steps: fp32 reorders sums only (rounding ~1e-6 per op, grown by 20 SGD steps); bf16 rounds every
#: convolution to 8 significant bits, and compiled and eager round at different places.
LOSS_TOLERANCE = {"fp32": 1e-3, "bf16": 3e-2}
SPEEDUP_RULE = 1.3


def crop_batches(steps: int, batch_size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` batches of ``batch_size`` training pictures drawn at random (seeded), normalised as the recipe
    tests: ``(N x 3 x H x W images, N x H x W labels)``, the same for every arm."""
    samples = list(build_dataset("folder", teaching_data(quiet=True), "train", progress=False))
    transform = teaching_transform()
    images = torch.stack([transform(sample["image"]) for sample in samples])  # pictures x 3 x H x W
    labels = torch.stack([torch.as_tensor(sample["label"]).long() for sample in samples])  # pictures x H x W
    generator = torch.Generator().manual_seed(seed)
    picks = [torch.randint(len(samples), (batch_size,), generator=generator) for _ in range(steps)]
    return [(images[pick], labels[pick]) for pick in picks]


class Arm:
    """One training run: a model copy, its SGD, and a step that may be compiled and may run under bf16."""

    def __init__(self, model: nn.Module, precision: str, compiled: bool, lr: float):
        entry = get_entry(DEFAULT_MODEL).train
        self.model = copy.deepcopy(model).train()
        self.precision, self.compiled = precision, compiled
        self.forward: Callable = torch.compile(self.model) if compiled else self.model
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=entry.momentum,
                                         weight_decay=entry.weight_decay)
        self.losses: list[float] = []
        self.seconds: list[float] = []

    @property
    def name(self) -> str:
        return f"{'compiled' if self.compiled else 'eager'} {self.precision}"

    def step(self, images: torch.Tensor, labels: torch.Tensor, seed: int) -> None:
        """The trainer's step (forward under the precision's autocast, fp32 losses, backward, SGD), timed.
        ``seed`` seeds the step's dropout, so every arm drops the same units."""
        torch.manual_seed(seed)
        started = time.process_time()
        cast = (contextlib.nullcontext() if self.precision == "fp32" else
                torch.autocast("cpu", dtype=torch.bfloat16))
        with cast:
            logits, aux_logits = self.forward(images)
        losses = seg_losses(logits.float(), aux_logits.float(), labels, TrainConfig.aux_weight)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.optimizer.step()
        self.losses.append(float(losses["loss"].detach()))
        self.seconds.append(time.process_time() - started)


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.steps < 2:
        raise SystemExit(f"--steps {args.steps}: needs at least 2 (the first compiled step is the compile)")
    torch.set_num_threads(args.threads)
    # Inductor draws dropout masks from its own generator unless told to use torch's: without this the
    # compiled arms drop other units than the eager ones, and the losses differ by dropout, not by compile
    torch._inductor.config.fallback_random = True
    batches = crop_batches(args.steps, TEACHING.batch_size, args.seed)
    num_classes = build_dataset("folder", teaching_data(quiet=True), "train", progress=False).num_classes
    torch.manual_seed(args.seed)
    model = build_model(DEFAULT_MODEL, num_classes=num_classes, **TEACHING.model_overrides)
    arms = [Arm(model, precision, compiled, TEACHING.lr) for precision in PRECISIONS for compiled in (False, True)]
    print(f"teaching recipe, batch {TEACHING.batch_size} x 160 x 160, {args.steps} steps per arm, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s), CPU-time clock; load average at start {load()}")
    for index, (images, labels) in enumerate(batches):
        for arm in arms:
            arm.step(images, labels, args.seed + index)
    print(f"load average at end {load()}")
    for precision in PRECISIONS:
        eager, compiled = (arm for arm in arms if arm.precision == precision)
        eager_s, compiled_s = statistics.median(eager.seconds[1:]), statistics.median(compiled.seconds[1:])
        speedup = eager_s / compiled_s
        relative = max_relative_series_difference(compiled.losses, eager.losses)
        use = speedup >= SPEEDUP_RULE and relative <= LOSS_TOLERANCE[precision]
        print(f"  {precision}: step eager {eager_s * 1000:.0f} ms, compiled {compiled_s * 1000:.0f} ms "
              f"({speedup:.2f}x; first compiled step, with its compile, {compiled.seconds[0]:.1f} s CPU); "
              f"max rel. loss diff {relative:.1e} (tolerance {LOSS_TOLERANCE[precision]:.0e}); "
              f"compile in training: {'yes' if use else 'no'}")
        print(f"    losses eager    {' '.join(f'{value:.4f}' for value in eager.losses)}")
        print(f"    losses compiled {' '.join(f'{value:.4f}' for value in compiled.losses)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
