"""mIoU of the same trained model evaluated in fp32, fp32 optimized and bf16: does the precision change the score?

Evaluates one checkpoint on a data set three ways (one :class:`isanet.evaluation.inference.Predictor` each,
through :func:`isanet.evaluation.evaluate.evaluate_predictor`, mmseg's test path) and prints each mIoU, its
difference from fp32 (target: within 0.1), and the share of pixels whose predicted class is the same as fp32's,
over the whole split. By default it uses the sample fine-tune's tiny R-18 (notebook 04 writes it;
``benchmarks/finetune_voc_sample.py`` trains the same one) on the synthetic VOC
sample's validation split it was trained for, at the notebook's test scale:

    .venv/bin/python benchmarks/eval_precision.py --threads 1
    .venv/bin/python benchmarks/eval_precision.py --checkpoint other_run/isanet_r18_finetuned_sample_voc.pth

Synthetic data: the numbers say how much the precision moves a score, nothing about ISANet's accuracy.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from isanet.data.registry import build_dataset
from isanet.engine.config import DEFAULT_MODEL
from isanet.engine.recipes import VOC_SAMPLE, VOC_SAMPLE_DATA
from isanet.evaluation.evaluate import evaluate_predictor
from isanet.evaluation.inference import Predictor
from isanet.io.checkpoint import load_model
from isanet.models.zoo import get_entry
from isanet.notebook.session import repo_root, resolve_path, sample_dataset

WAYS = {"fp32": dict(precision="fp32"), "fp32 optimized": dict(precision="fp32", optimize=True),
        "bf16": dict(precision="bf16"), "bf16 optimized": dict(precision="bf16", optimize=True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="data/samples/checkpoints/isanet_r18_finetuned_sample_voc.pth")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    path = resolve_path(args.checkpoint, repo_root())
    if not path.is_file():
        raise SystemExit(f"--checkpoint {path}: not found; run notebook 04 (or pass the file)")
    model = load_model(path).eval()
    dataset = build_dataset("voc", sample_dataset("voc", **VOC_SAMPLE_DATA).parent, "val")
    settings = get_entry(DEFAULT_MODEL).test.replace(scale=tuple(VOC_SAMPLE.val_scale))
    results, predictions = {}, {}
    for way, options in WAYS.items():
        kept: list[torch.Tensor] = []  # every predicted label map, to compare predictions pixel by pixel
        started = time.perf_counter()
        results[way] = evaluate_predictor(Predictor(model, settings, **options), dataset, progress=False,
                                          on_prediction=kept.append)
        results[way]["seconds"] = time.perf_counter() - started
        predictions[way] = torch.cat([prediction.flatten() for prediction in kept])
    print(f"{path.name} on the synthetic VOC sample's val split ({len(dataset)} images, scale {settings.scale}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for way, result in results.items():
        agree = (predictions[way] == predictions["fp32"]).float().mean().item()
        delta = result["mIoU"] - results["fp32"]["mIoU"]
        print(f"  {way:15s} mIoU {result['mIoU']:6.2f}  (fp32 {delta:+.2f}; target within 0.1: "
              f"{'met' if abs(delta) <= 0.1 else 'NOT met'})  same class as fp32 on {100 * agree:.2f} % of pixels  "
              f"[{result['settings']['precision']}, {result['seconds']:.1f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
