# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Fine-tuning ISANet on Pascal VOC, with live curves
#
# **Goal:** run the published training recipe (SGD, poly learning rate, cross-entropy plus the 0.4-weighted
# auxiliary FCN loss, mmseg's augmentation pipeline) from a notebook, watch the loss and the validation mIoU
# while it trains, and compare predictions before and after.
#
# With `DATA_ROOT` pointing at a real Pascal VOC 2012 (+ SBD aug) folder this is a real fine-tune (use a GPU and
# the full model). Without it, the notebook writes a small **synthetic** VOC-layout sample (its objects drawn
# from the first five VOC object classes) and trains a tiny R-18 ISANet from random weights on the CPU: the
# curves show the mechanics (the loss falls, the mIoU rises on data a model can learn), not anything about the
# published models. Under a test runner (`QUICK`) it runs only a few iterations.
#
# The trainer is `isanet.engine.trainer.Trainer`: iterate `trainer.run()` and you get one record per iteration (the
# same records it writes to `WORK_DIR/log.jsonl`); evaluation records carry `mIoU`.

# %% tags=["parameters"]
# Parameters. Relative paths are taken from the repository root.
DATA_ROOT = None          # Pascal VOC 2012 root (VOCdevkit/VOC2012 or the folder above it); None: synthetic sample
MODEL = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"  # the zoo recipe to follow (its loss, optimiser, pipeline)
TINY_MODEL = True         # train a small R-18 (64 channels) instead of the recipe's R-50: feasible on a CPU
INIT = None               # start from: an mmseg resnet*_v1c ImageNet file, or a zoo checkpoint; None: random weights
ITERS = None              # None: 20 when QUICK, else NOTEBOOK_SETTINGS' 300 (the published recipe: 20000 on 4 GPUs)
QUICK = None              # None: tiny settings when run by a test runner (pytest --nbmake, CI), full otherwise
DEVICE = "auto"           # "cpu", "cuda" or "auto"
PRECISION = "fp32"        # "bf16": autocast, ~1.5x faster steps on CPUs with AVX-512 BF16; "fp16" on GPUs
THREADS = None            # torch CPU threads; None: 1 when QUICK (steady on a busy shared CPU), else torch's default
WORK_DIR = "work_dirs/notebook_04"   # checkpoints and log.jsonl go here (a fresh run folder each time)
SAVE_AS = "data/samples/checkpoints/isanet_r18_finetuned_sample_voc.pth"  # final weights, for notebook 02's menu
SEED = 0

# %% [markdown]
# ## Set-up: data, settings

# %%
# %matplotlib inline
import shutil
import tempfile
import time
from pathlib import Path

import torch
from IPython.display import display
from matplotlib.figure import Figure

from isanet.data.datasets import build_dataset
from isanet.engine.trainer import (
    NOTEBOOK_SAMPLE_DATA,
    NOTEBOOK_SETTINGS,
    TrainConfig,
    Trainer,
)
from isanet.io.checkpoint import save_checkpoint
from isanet.notebook.plots import plot_predictions, plot_training_curves
from isanet.notebook.session import (
    configure_torch,
    quick_mode,
    repo_root,
    resolve_path,
    sample_dataset,
)

ROOT = repo_root()
quick = quick_mode(QUICK)
device = configure_torch(DEVICE, THREADS, quick)

data_root = resolve_path(DATA_ROOT, ROOT)
synthetic = data_root is None
if synthetic:
    data_root = sample_dataset("voc", ROOT, seed=SEED, **NOTEBOOK_SAMPLE_DATA)

settings = dict(NOTEBOOK_SETTINGS) if TINY_MODEL else {"name": MODEL}
settings["name"] = MODEL
if quick:
    settings.update(iters=ITERS or 20, eval_every=10, limit_val=4, save_every=ITERS or 20, keep_checkpoints=1)
elif ITERS:
    settings.update(iters=ITERS, save_every=max(ITERS // 3, 1))
settings["keep_checkpoints"] = 1

if quick:  # a test run keeps nothing in work_dirs/
    work_dir = Path(tempfile.mkdtemp(prefix="isanet-notebook04-")) / "run"
else:
    work_dir = resolve_path(WORK_DIR, ROOT) / time.strftime("run-%Y%m%d-%H%M%S")
settings["eval_at_start"] = True
config = TrainConfig(data_root=data_root, work_dir=work_dir, device=device, seed=SEED, init=INIT, progress=False,
                     precision=PRECISION, **settings)
print(f"{'QUICK (test-runner) settings' if quick else 'notebook settings'}: "
      f"{ {k: v for k, v in settings.items() if k != 'name'} }")
print(f"device {device}" + (f", {torch.get_num_threads()} CPU thread(s)" if device == "cpu" else ""))
if synthetic:
    print("TRAINING ON SYNTHETIC SAMPLE DATA: the numbers below say nothing about ISANet on Pascal VOC.")

# %% [markdown]
# ## Build the trainer
#
# `Trainer(config)` fills every unset field from the zoo entry's recipe, builds the model (random weights
# unless `INIT`), the optimiser and the data stream, and says what it will do. Nothing has trained yet, so
# this is the moment to record the **predictions before**.

# %%
trainer = Trainer(config)
model, settings_eval = trainer.parts.bare_model, trainer.parts.eval_settings
val_set = build_dataset("voc", data_root, split="val")
shown = [val_set[i] for i in range(min(3, len(val_set)))]


def predictions() -> list:
    """Class maps of the shown validation images, predicted the way evaluation predicts them."""
    return [settings_eval.scores(model, sample["image"], ms_flip=False).argmax(dim=0).cpu().numpy()
            for sample in shown]


before = predictions()
print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters; "
      f"{len(val_set)} validation images")

# %% [markdown]
# ## Train, with live curves
#
# The figure below is redrawn at every evaluation: the training loss (blue, with its running mean) and the
# validation mIoU (orange). The first mIoU point is the evaluation before any training.

# %%
records = []
handle = display(Figure(figsize=(7, 3.5)), display_id=True)
started = time.perf_counter()
for record in trainer.run():
    records.append(record)
    if "mIoU" in record:
        figure = Figure(figsize=(7, 3.5), layout="constrained")
        plot_training_curves(records, ax=figure.subplots())
        handle.update(figure)
        loss = f"loss {record['loss']:.3f}, " if "loss" in record else ""
        print(f"iter {record['iter']:>4}: {loss}val mIoU {record['mIoU']:.2f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
summary = trainer.summary()
trainer.close()
print(f"trained {summary['iter']} iterations in {summary['wall_time_s']:.0f} s; last checkpoint "
      f"{summary['last_checkpoint']}")

# %% [markdown]
# ## Predictions before and after
#
# Same images, same prediction path (test-scale resize, whole-image inference, logits back at the original
# size), in the VOC palette; white is "ignore" (the void borders VOC draws around objects).

# %%
after = predictions()
display(plot_predictions([{"image": s["image"], "maps": [s["label"], b, a]} for s, b, a in zip(shown, before, after)],
                         val_set.PALETTE, titles=["label", "before training", "after training"]))
first, last = records[0], [r for r in records if "mIoU" in r][-1]
print(f"val mIoU {first['mIoU']:.2f} before -> {last['mIoU']:.2f} after {last['iter']} iterations"
      + (" (SYNTHETIC data: not comparable with the published 76.78)" if synthetic else ""))
if quick:
    print("QUICK run: 20 iterations learn little beyond the background; run the notebook yourself (QUICK = "
          "False: 300 iterations, about two minutes on one CPU thread) to see the background and the sample's "
          "five object classes being learnt (measured, SEED = 0: mIoU 0 -> 67; seeds 1 and 2: 86 and 53).")

# %% [markdown]
# ## Keep the weights
#
# The trainer's checkpoints (with optimiser state, for `--resume`) are in the work folder. We also save the
# bare weights with their meta data to `SAVE_AS`, where notebook 02's model menu finds them.

# %%
meta, _ = trainer.parts.checkpoint_content(summary["iter"])
saved = save_checkpoint(model, resolve_path(SAVE_AS, ROOT), meta={**meta, "note": "fine-tuned by notebook 04" + (
    " on SYNTHETIC sample data" if synthetic else "")})
print(f"saved {saved}")
if quick:
    shutil.rmtree(work_dir.parent, ignore_errors=True)

# %% [markdown]
# **Going further.** The same run from a shell: `isanet train --data-root ... --work-dir ...` (add `--resume`
# to continue after an interruption, `torchrun --nproc_per_node N -m isanet.cli train ...` for several GPUs).
# Notebook 05 evaluates the published checkpoints.

# %% [markdown]
# ## Your own data
#
# The same trainer fine-tunes on your own images once they are in the **folder layout** (details and checks in
# `isanet.data.folder`):
#
# ```
# ROOT/classes.txt                  one class name per line, in id order (line 1 is id 0)
# ROOT/palette.txt                  optional: one "r g b" line per class
# ROOT/images/{train,val}/NAME.jpg  (or .jpeg / .png)
# ROOT/masks/{train,val}/NAME.png   single-channel 8-bit class ids, 255 = ignore
# ```
#
# Every image/mask pair is checked before training starts: a missing mask, a size mismatch, a colour mask or an
# id beyond `classes.txt` stops with one line naming the file (`skip_bad=True`, CLI `--skip-bad`, leaves such
# pairs out instead). Without `OWN_DATA_ROOT` the cell writes a small **synthetic** folder data set (what
# `isanet sample-data folder --out DIR` writes): shapes of four colour classes on a background.

# %%
OWN_DATA_ROOT = None  # your folder data set (holding classes.txt, images/, masks/); None: a synthetic one
own_root = resolve_path(OWN_DATA_ROOT, ROOT)
own_synthetic = own_root is None
if own_synthetic:
    own_root = sample_dataset("folder", ROOT, num_train=16, num_val=8, size=96 if quick else 128, seed=SEED)
own_val = build_dataset("folder", own_root, split="val")
print(f"{len(own_val)} val images, classes from classes.txt: {', '.join(own_val.CLASSES)}")
display(plot_predictions([{"image": s["image"], "maps": [s["label"]]} for s in list(own_val)[:3]],
                         own_val.PALETTE, titles=["mask"]))

# %% [markdown]
# Above: three validation images and their masks in the data set's palette. Now the fine-tune: `init` is the
# VOC model saved above (21 classes), `dataset="folder"` reads the folder, and the model gets as many classes as
# `classes.txt` lists. The trainer keeps every weight of `init` except the classifier (`conv_seg`), which it
# re-initialises for the new classes; its first message says so. From a shell it is
# `isanet train MODEL --dataset folder --data-root ROOT --init CHECKPOINT --work-dir DIR`.

# %%
own_work = work_dir.parent / "own" if quick else resolve_path(WORK_DIR, ROOT) / time.strftime("own-%Y%m%d-%H%M%S")
own_trainer = Trainer(TrainConfig(data_root=own_root, work_dir=own_work, dataset="folder", init=saved,
                                  device=device, seed=SEED, progress=False, **settings))
own_records = list(own_trainer.run())  # its messages (the classifier re-initialisation first) go to stderr
own_trainer.close()
own_figure = Figure(figsize=(7, 3.5), layout="constrained")
plot_training_curves(own_records, ax=own_figure.subplots())
display(own_figure)
own_scores = [r for r in own_records if "mIoU" in r]
print(f"val mIoU on {'SYNTHETIC ' if own_synthetic else ''}folder data: {own_scores[0]['mIoU']:.2f} with the "
      f"re-initialised classifier -> {own_scores[-1]['mIoU']:.2f} after {own_scores[-1]['iter']} iterations")
if quick:
    print("QUICK run: 20 iterations barely move a fresh classifier; run with QUICK = False for the 300-iteration "
          "fine-tune.")
    shutil.rmtree(own_work.parent, ignore_errors=True)

# %% [markdown]
# The curve is the same kind as before, on your classes: the first mIoU point is the model with VOC features and
# a fresh classifier, the last one after fine-tuning. `isanet eval MODEL --checkpoint DIR/latest.pth --data-root
# ROOT --confusion cm.png` then measures it and draws where each class's pixels went (notebook 05 shows the
# confusion matrix).
