"""Argmax agreement of compiled inference with eager fp32 on the trained teaching model.

Random weights are a worst case for reduced precision (a pixel's two best classes are nearly tied); the shipped
teaching model (``isanet.notebook.teaching.teaching_checkpoint()``, trained on the SYNTHETIC context task) has the
margins of a trained model. Its 24 validation pictures, in the teaching recipe's test transform, go through
eager fp32, and through ``optimize_for_inference`` in fp32 and in bf16 (``torch.compile``, weights frozen), as
one batch (one input shape: one compile per precision). Printed: the share of pixels whose class equals eager
fp32's per precision (target >= 99.9 %), whether compiled fp32's predictions equal eager fp32's on every pixel,
the largest relative logit difference, and each compile's time.

    PYTHONPATH=. python benchmarks/compile_agreement.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from isanet.analysis.compare import max_relative_difference, pixel_agreement
from isanet.io.checkpoint import load_model
from isanet.models.optimize import optimize_for_inference
from isanet.notebook.teaching import teaching_checkpoint, teaching_samples, teaching_transform

PRECISIONS = ("fp32", "bf16")
TARGET = 99.9  # per cent of pixels with eager fp32's class (issue 26, trained model)


def teaching_batch() -> torch.Tensor:
    """The context task's validation pictures as one ``N x 3 x H x W`` batch, normalised as the recipe tests."""
    transform = teaching_transform()
    return torch.stack([transform(sample["image"]) for sample in teaching_samples()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(teaching_checkpoint()).eval()
    images = teaching_batch()
    with torch.no_grad():
        eager = model(images)  # N x classes x H x W, fp32
    print(f"teaching model on {len(images)} context-task val pictures {tuple(images.shape[2:])}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s), load average "
          f"{' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    failed = False
    for precision in PRECISIONS:
        compiled = optimize_for_inference(model, precision, log=lambda line: print("  " + line))
        logits = compiled(images)
        share = pixel_agreement(logits, eager)
        agree = 100 * share
        relative = max_relative_difference(logits, eager)
        seconds = getattr(compiled, "compile_seconds", {}).get(tuple(images.shape))
        compile_note = f"compile {seconds:.1f} s" if seconds is not None else "not compiled (fallback)"
        line = (f"  compiled {precision}: argmax = eager fp32 on {agree:.3f} % of pixels (target >= {TARGET} %: "
                f"{'met' if agree >= TARGET else 'NOT met'}), max rel. logit diff {relative:.1e}, {compile_note}")
        if precision == "fp32":
            equal = share == 1.0  # exactly 1.0 only when every pixel agrees
            line += f"; predictions equal eager fp32's: {'yes' if equal else 'NO'}"
            failed |= not equal
        print(line)
        failed |= agree < TARGET
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
