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
# # 05 · Evaluating the published checkpoints: Cityscapes and ADE20K
#
# **Goal:** load the OpenMMLab ISANet checkpoints, evaluate them on the validation sets exactly the way
# mmsegmentation's `tools/test.py` does, and put the measured mIoU next to the published one — with a
# per-class IoU chart and predictions drawn in each data set's palette.
#
# **You will learn**
#
# 1. the three numbers every segmentation paper reports — mIoU, mAcc, aAcc — as formulas over a confusion
#    matrix, and how `isanet.evaluation.metrics.SegMetrics` computes them (mmseg's `IoUMetric`, to the rounding);
# 2. which classes enter a mean (a class absent from both labels and predictions has no IoU);
# 3. mmseg's test path: keep-ratio resize into the test scale, whole or sliding-window inference, logits
#    resized back to the label's size;
# 4. when a measured number may be put next to a published one, and when it must be labelled *not comparable*.
#
# **Prerequisites:** what a semantic label map is (one class id per pixel, 255 = ignore); notebook 04's
# prediction path helps but is not required.
#
# **What you need for real numbers** (both are large, so they are not part of the kit):
#
# * weights: `isanet download isanet_r50-d8_4xb2-40k_cityscapes-512x1024 --dir data/checkpoints` and
#   `isanet download isanet_r50-d8_4xb4-80k_ade20k-512x512 --dir data/checkpoints` (`isanet zoo` lists all 16);
#   each file is checked against the hash in its name;
# * data: Cityscapes (`leftImg8bit/` + `gtFine/`, from cityscapes-dataset.com, after registering) and ADE20K
#   (`ADEChallengeData2016/` with `images/` + `annotations/`, from the MIT Scene Parsing benchmark), anywhere;
#   set the roots below.
#
# Without them the notebook still runs end to end: on small **synthetic** samples in the real layouts and with
# **random-weights** checkpoints in the real format. Such numbers measure nothing about ISANet (a random model
# predicts a few classes everywhere); the notebook labels every one of them *not comparable*.
#
# **Notation:** every letter used in notebooks 01–07 is on one card, [notation.md](notation.md).

# %% tags=["parameters"]
# Parameters. Relative paths are taken from the repository root.
CITYSCAPES_MODEL = "isanet_r50-d8_4xb2-40k_cityscapes-512x1024"   # any zoo name (or legacy 0.x name)
ADE20K_MODEL = "isanet_r50-d8_4xb4-80k_ade20k-512x512"
CITYSCAPES_CHECKPOINT = None  # a .pth file; None: the downloaded one in CHECKPOINT_DIR, else a random-weights sample
ADE20K_CHECKPOINT = None
CHECKPOINT_DIR = "data/checkpoints"
CITYSCAPES_ROOT = None        # e.g. "data/cityscapes" (holding leftImg8bit/ and gtFine/); None: synthetic sample
ADE20K_ROOT = None            # e.g. "data/ade/ADEChallengeData2016"; None: synthetic sample
LIMIT = None                  # evaluate the first N validation images; None: all (5 on a CPU with real data)
MS_FLIP = False               # mmseg's multi-scale + flip test-time augmentation (compare with the ms+flip mIoU)
DEVICE = "auto"               # "cpu", "cuda" or "auto"
PRECISION = "fp32"            # "bf16": autocast on CPUs with AVX-512 BF16 (speed and agreement: benchmarks/README.md)
QUICK = None                  # None: tiny settings when run by a test runner (pytest --nbmake, CI)
THREADS = None                # torch CPU threads; None: 1 when QUICK (steady on a busy shared CPU), else default

# %% [markdown]
# ## Set-up

# %%
# %matplotlib inline
import time
from pathlib import Path

import numpy as np
from IPython.display import display

from isanet.data.registry import build_dataset
from isanet.evaluation.evaluate import evaluate_predictor
from isanet.evaluation.inference import Predictor
from isanet.evaluation.metrics import SegMetrics, format_confused, format_table, most_confused
from isanet.io.checkpoint import Checkpoint, load_model
from isanet.models.zoo import get_entry, short_dataset_name
from isanet.notebook.confusion_plot import plot_confusion
from isanet.notebook.plots import plot_per_class_iou, plot_predictions
from isanet.notebook.session import (
    configure_torch,
    find_zoo_checkpoints,
    quick_mode,
    repo_root,
    resolve_path,
    sample_checkpoint,
    sample_dataset,
)

ROOT = repo_root()
quick = quick_mode(QUICK)
device = configure_torch(DEVICE, THREADS, quick)
downloaded = find_zoo_checkpoints(resolve_path(CHECKPOINT_DIR, ROOT))
print(f"device {device}; published checkpoints found in {CHECKPOINT_DIR}: {sorted(downloaded) or 'none'}")

# %% [markdown]
# ## The metrics as formulas
#
# Over the whole validation set (not per image), count the labelled pixels ($y \neq 255$) in a $K \times K$
# confusion matrix $C$: $C_{ij}$ = pixels of label class $i$ predicted as class $j$. Then, per class $k$,
#
# $$\mathrm{IoU}_k = \frac{C_{kk}}{\sum_j C_{kj} + \sum_i C_{ik} - C_{kk}}
# = \frac{|\text{pred}_k \cap \text{label}_k|}{|\text{pred}_k \cup \text{label}_k|}, \qquad
# \mathrm{Acc}_k = \frac{C_{kk}}{\sum_j C_{kj}},$$
#
# and the summaries
#
# $$\mathrm{mIoU} = \frac{1}{|\mathcal{U}|} \sum_{k \in \mathcal{U}} \mathrm{IoU}_k, \qquad
# \mathrm{mAcc} = \frac{1}{|\mathcal{L}|} \sum_{k \in \mathcal{L}} \mathrm{Acc}_k, \qquad
# \mathrm{aAcc} = \frac{\sum_k C_{kk}}{\sum_{i,j} C_{ij}},$$
#
# where $\mathcal{U}$ are the classes with a non-empty union (in the labels *or* the predictions) and $\mathcal{L}$
# those present in the labels ($K$ stays the number of classes): a class nobody drew and nobody predicted has no
# IoU (NaN) and is left out, one that is predicted but never labelled has IoU 0 and counts. In the code,
# `SegMetrics.update(pred, label)` adds to `confusion` (rows = label, columns = prediction) and to `areas` =
# (intersect $C_{kk}$, union, pred area $\sum_i C_{ik}$, label area $\sum_j C_{kj}$); `compute()` takes the
# NaN-mean and rounds to two decimals in percent, as mmseg's `IoUMetric` does. A worked example with three classes,
# by hand and by `SegMetrics`:

# %%
toy_label = np.array([[0, 0, 1, 1],
                  [0, 0, 1, 1],
                  [255, 255, 1, 1]])          # class 2 is never labelled; 255 = ignore
toy_pred = np.array([[0, 1, 1, 1],
                 [0, 0, 2, 1],
                 [2, 2, 1, 1]])
metrics = SegMetrics(num_classes=3)
metrics.update(toy_pred, toy_label)
confusion = metrics.confusion
intersect, label_area, pred_area = np.diag(confusion), confusion.sum(1), confusion.sum(0)
with np.errstate(invalid="ignore"):
    iou, acc = intersect / (label_area + pred_area - intersect), intersect / label_area
by_hand = {"mIoU": np.nanmean(iou) * 100, "mAcc": np.nanmean(acc) * 100,
           "aAcc": intersect.sum() / confusion.sum() * 100}
computed = metrics.compute()
print(f"confusion (rows label 0..2, columns prediction 0..2):\n{confusion}")
print(f"IoU per class {np.round(iou * 100, 2)}, Acc per class {np.round(acc * 100, 2)} (nan: not in the labels)")
for key, value in by_hand.items():
    print(f"{key}: by hand {value:.2f}, SegMetrics {computed[key]:.2f}")
    assert round(value, 2) == computed[key]

# %% [markdown]
# Class 2 is predicted on one labelled pixel but never labelled: its IoU is $0/1 = 0$ and it pulls the mIoU
# down, while its Acc is undefined and mAcc ignores it. The two ignored pixels (255) count nowhere, although
# they were predicted as class 2 too: they are dropped before counting, whatever is predicted
# there. A random-weights model, which predicts a few classes all over the picture, is punished the same way.

# %% [markdown]
# ## One evaluation, step by step
#
# For each data set: find the data (or write the synthetic sample), find the checkpoint (or write a
# random-weights one), build the model from the zoo entry and load the weights **by their own key names**, take
# the entry's test settings (mode, test scale, normalisation), evaluate, and keep a few predictions to look at.
# A checkpoint counts as the published weights only when its sha256 starts with the zoo entry's published hash
# prefix (the one in the downloaded file's name); any other file, a fine-tune of yours for instance, is
# evaluated the same way but labelled *not comparable*.
#
# On the synthetic sample the images are small, so the test scale is shrunk to the sample's size — another
# reason those numbers are not comparable. Everything that decided a number is kept in `result["settings"]`.

# %%
def evaluate_published(model_name: str, checkpoint, data_root, limit, show: int = 2) -> dict:
    entry = get_entry(model_name)
    kind = short_dataset_name(entry)
    root = resolve_path(data_root, ROOT)
    synthetic_data = root is None
    if synthetic_data:
        root = sample_dataset(kind, ROOT, num_train=1, num_val=2, size=256)
    path = resolve_path(checkpoint, ROOT) or downloaded.get(entry.name)
    random_weights = path is None
    if random_weights:
        path = sample_checkpoint(entry.name, ROOT)
    weights = Checkpoint.read(path)  # read once: its sha256 says which file it is, and its weights load
    published_weights = not random_weights and weights.sha256.startswith(entry.sha256_prefix)
    dataset = build_dataset(kind, root, split="val")
    settings = entry.test
    if synthetic_data:  # the sample is 256 px wide: test near that size, not at the 2048-px scale of real data
        settings = settings.replace(scale=(1024, 256) if kind == "ade20k" else (512, 256))
    if limit is None and not device.startswith("cuda") and not synthetic_data:
        limit = 5
        print(f"CPU with real data: evaluating the first {limit} images only (set LIMIT to change this)")
    print(f"{entry.name}: {path.name} on {len(dataset)} {kind} val images at {root}")
    predictor = Predictor(load_model(weights, entry.name), settings, PRECISION, device)
    started = time.perf_counter()
    result = evaluate_predictor(predictor, dataset, ms_flip=MS_FLIP, limit=limit, progress=False)
    samples = [dataset[i] for i in range(min(show, result["num_images"]))]
    for sample in samples:
        sample["prediction"] = predictor.class_ids(sample["image"], MS_FLIP).numpy()
    published = entry.mIoU_ms_flip if MS_FLIP else entry.mIoU
    reasons = [why for why, flag in (
        ("synthetic sample data", synthetic_data), ("random weights", random_weights),
        (f"not the published weights (sha256 of {path.name} does not start with {entry.sha256_prefix})",
         not (random_weights or published_weights)),
        (f"only {result['num_images']} of {len(dataset)} images", result["num_images"] < len(dataset))) if flag]
    comparable = not reasons
    print(f"  evaluated {result['num_images']} images in {time.perf_counter() - started:.0f} s")
    return dict(entry=entry, kind=kind, dataset=dataset, result=result, samples=samples, published=published,
                comparable=comparable, reasons=reasons)


def report(run: dict) -> None:
    entry, result = run["entry"], run["result"]
    label = "COMPARABLE" if run["comparable"] else f"NOT COMPARABLE ({', '.join(run['reasons'])})"
    print(f"{entry.name} ({entry.dataset}, {'ms+flip' if MS_FLIP else 'single scale'}):\n"
          f"  measured mIoU {result['mIoU']:.2f} | published {run['published']:.2f} | {label}\n"
          f"  aAcc {result['aAcc']:.2f}, mAcc {result['mAcc']:.2f}; settings: mode {result['settings']['mode']}, "
          f"scale {result['settings']['scale']}")


limit = LIMIT if LIMIT is not None else (2 if quick else None)

# %% [markdown]
# ## Cityscapes (19 classes)

# %%
cityscapes = evaluate_published(CITYSCAPES_MODEL, CITYSCAPES_CHECKPOINT, CITYSCAPES_ROOT, limit)
report(cityscapes)

# %% [markdown]
# Per-class IoU, in the Cityscapes palette (classes absent from both labels and predictions have no IoU and are
# left out of the mean, as in mmseg), then the table mmseg prints:

# %%
tag = "" if cityscapes["comparable"] else " — NOT COMPARABLE"
display(plot_per_class_iou(cityscapes["result"], cityscapes["dataset"].PALETTE,
                           title=f"{cityscapes['entry'].name}{tag}"))
names = list(cityscapes["result"]["IoU"])
print(format_table({"IoU": list(cityscapes["result"]["IoU"].values()),
                    "Acc": list(cityscapes["result"]["Acc"].values())}, names))

# %% [markdown]
# Predictions next to the labels. White marks ignored pixels (label 255, counted nowhere); the cell prints their
# share in each label shown. In real Cityscapes labels they include the ego vehicle and the image border; the
# synthetic sample has only what its generator drew.

# %%
for s in cityscapes["samples"]:
    print(f"{Path(s['path']).name}: {(s['label'] == 255).mean() * 100:.1f} % of the label is ignored (255)")
display(plot_predictions([{"image": s["image"], "maps": [s["label"], s["prediction"]]} for s in cityscapes["samples"]],
                         cityscapes["dataset"].PALETTE, titles=["label", "prediction" + tag]))

# %% [markdown]
# ## ADE20K (150 classes)

# %%
ade20k = evaluate_published(ADE20K_MODEL, ADE20K_CHECKPOINT, ADE20K_ROOT, limit)
report(ade20k)

# %%
tag = "" if ade20k["comparable"] else " — NOT COMPARABLE"
display(plot_per_class_iou(ade20k["result"], ade20k["dataset"].PALETTE, title=f"{ade20k['entry'].name}{tag}"))
display(plot_predictions([{"image": s["image"], "maps": [s["label"], s["prediction"]]} for s in ade20k["samples"]],
                         ade20k["dataset"].PALETTE, titles=["label", "prediction" + tag]))

# %% [markdown]
# The same two views as for Cityscapes: IoU per class, then label beside prediction. The lines above them say how
# to read them. With the synthetic sample and random weights (what the cell prints when `ADE20K_ROOT` and
# `ADE20K_CHECKPOINT` are None), an aAcc of 0.00 means not one labelled pixel got its class: a random model
# spreads a few of its 150 classes over the picture, and none of them need be among the classes the two sample
# labels hold. With real ADE20K and the published weights, the measured mIoU stands beside the published one.

# %% [markdown]
# ## Where the errors go: the confusion matrix
#
# mIoU says *how much* is wrong; the confusion matrix says *what is mistaken for what*. `evaluate` keeps it in
# `result["confusion"]`: entry $C_{ij}$ counts the pixels labelled class $i$ and predicted class $j$ (ignored
# pixels left out). Dividing each row by its sum gives where the pixels of class $i$ went,
# $\hat C_{ij} = C_{ij} / \sum_k C_{ik}$: the diagonal $\hat C_{ii}$ is that class's Acc, and a bright cell off
# the diagonal is a confusion. `isanet eval ... --confusion cm.png` draws the same picture, and writes the counts
# into the results JSON.

# %%
run = cityscapes  # the Cityscapes evaluation above
tag = "" if run["comparable"] else " — NOT COMPARABLE"
display(plot_confusion(run["result"]["confusion"], run["dataset"].CLASSES, title=f"{run['entry'].name}{tag}"))
print(format_confused(most_confused(run["result"]["confusion"], run["dataset"].CLASSES)))

# %% [markdown]
# Rows are the labelled classes, columns the predictions, each row in percent of that class's labelled pixels
# (blank rows: classes with no labelled pixel in the evaluated images). The list names the largest off-diagonal
# cells in pixels. With random weights on the synthetic sample the matrix only shows which few classes the
# untrained model predicts everywhere (whole bright columns); with the published checkpoint on real data, the
# off-diagonal cells that remain are the confusions worth looking at in the images.

# %% [markdown]
# ## Measured vs published
#
# A measured mIoU matches the published one only with the published weights, the full validation set and the
# same test settings (what `isanet eval` uses by default). This notebook does not compare the kit with
# mmsegmentation itself: that is the package's parity test (`tests/evaluation/test_parity.py`, which holds the
# logits to 1e-5 of the largest one) and `benchmarks/reference_parity.py`, which runs both. Given that, when a run
# is comparable a difference beyond rounding points at the data (e.g. Cityscapes `labelTrainIds` made with another
# script) or the settings.

# %%
for run in (cityscapes, ade20k):
    label = "comparable" if run["comparable"] else f"NOT COMPARABLE: {', '.join(run['reasons'])}"
    difference = run["result"]["mIoU"] - run["published"]
    print(f"{run['entry'].dataset:>10}  measured {run['result']['mIoU']:6.2f}  published {run['published']:6.2f}"
          f"  measured - published {difference:+7.2f}  ({label})")

# %% [markdown]
# The field before the last is the measured difference. For a run labelled *comparable* (published weights, full
# validation set, the entry's test settings) it should be within rounding of zero, and anything larger is worth
# chasing in the data or the settings; for a run labelled *not comparable* it means nothing: with the synthetic
# sample or random weights the measured numbers only show that the evaluation path runs.
#
# ## Summary
#
# * mIoU, mAcc and aAcc are read off one confusion matrix accumulated over the whole validation set:
#   $\mathrm{IoU}_k = C_{kk} / (\text{label}_k + \text{pred}_k - C_{kk})$, averaged over the classes that occur.
# * `SegMetrics` is mmseg's `IoUMetric` (its rounding included); `evaluate` adds mmseg's test path
#   (`TestSettings`, a zoo entry's `.test`: scale, mode, normalisation, ms+flip).
# * A measured mIoU is comparable with a published one only with the published weights, the full validation
#   set and the same test settings; every other number here is labelled *not comparable*.

# %% [markdown]
# ## Exercises
#
# Four exercises, easy to hard. Each is followed by its worked solution, its code and output collapsed: click
# the bar on the left of the cell (or the three dots) to open it; try first.

# %% [markdown]
# 1. **(easy)** In the worked example, relabel the two ignored pixels as class 0: which numbers change, and why?

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Solution 1: the ignored pixels become labelled class 0 (both were predicted as class 2)
relabelled = np.where(toy_label == 255, 0, toy_label)
again = SegMetrics(num_classes=3)
again.update(toy_pred, relabelled)
print(f"before: {({k: computed[k] for k in ('mIoU', 'mAcc', 'aAcc')})}")
print(f"after:  {({k: again.compute()[k] for k in ('mIoU', 'mAcc', 'aAcc')})}")
print("two more labelled pixels, both wrong: class 0 grows in label area (its IoU and Acc fall) and aAcc falls")

# %% [markdown]
# 2. **(easy)** A model predicts the most frequent class everywhere. Write its mIoU and aAcc for a map that is
#    75 % class 0 and 25 % class 1, by hand, and check with `SegMetrics`.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Solution 2: predict the majority class everywhere
truth = np.zeros((4, 4), dtype=np.int64)
truth[:1] = 1                                   # 4 of 16 pixels are class 1
majority = SegMetrics(num_classes=2)
majority.update(np.zeros_like(truth), truth)
# by hand: IoU_0 = 12 / 16, IoU_1 = 0 / 4 -> mIoU = 37.5; aAcc = 12 / 16 = 75
print(majority.compute()["mIoU"], majority.compute()["aAcc"])
assert (majority.compute()["mIoU"], majority.compute()["aAcc"]) == (37.5, 75.0)

# %% [markdown]
# 3. **(medium)** Why is the data set's mIoU not the mean of the per-image mIoUs? Show it with two small
#    images.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Solution 3: mIoU pools the counts; a mean of per-image mIoUs weighs a small image like a large one
big, small = np.zeros((10, 10), dtype=np.int64), np.ones((1, 2), dtype=np.int64)
big_pred, small_pred = big.copy(), np.array([[1, 0]])
per_image = []
pooled = SegMetrics(num_classes=2)
for truth_map, guess in ((big, big_pred), (small, small_pred)):
    one = SegMetrics(num_classes=2)
    one.update(guess, truth_map)
    per_image.append(one.compute()["mIoU"])
    pooled.update(guess, truth_map)
print(f"per image {per_image} -> mean {np.mean(per_image):.2f}; pooled over both {pooled.compute()['mIoU']:.2f}")

# %% [markdown]
# 4. **(hard)** Recompute the Cityscapes run's mIoU from its per-class IoU values, leaving out the NaN classes,
#    and list the classes that were neither labelled nor predicted in the evaluated images.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Solution 4: the mean of the per-class IoUs with the NaN classes left out
values = np.array(list(cityscapes["result"]["IoU"].values()), dtype=float)
print(f"mean of {int(np.isfinite(values).sum())} finite IoUs = {np.nanmean(values):.2f}, "
      f"reported mIoU {cityscapes['result']['mIoU']:.2f}")
print("neither labelled nor predicted (IoU NaN):",
      [name for name, v in cityscapes["result"]["IoU"].items() if not np.isfinite(v)])
assert abs(np.nanmean(values) - cityscapes["result"]["mIoU"]) < 0.01  # mean of rounded values vs rounded mean

# %% [markdown]
# ## Further reading
#
# * Huang et al., *Interlaced Sparse Self-Attention for Semantic Segmentation*,
#   [arXiv:1907.12273](https://arxiv.org/abs/1907.12273): the experiments section (Cityscapes, ADE20K, and the
#   single-scale / multi-scale + flip protocol behind the published numbers).
# * mmsegmentation `mmseg/evaluation/metrics/iou_metric.py` (`IoUMetric`) and `configs/isanet/` (the checkpoints
#   and their test settings); mmseg `mmseg/models/decode_heads/isa_head.py` and openseg.pytorch
#   `lib/models/modules/isa_block.py` for the head being evaluated.
# * Everingham et al., *The PASCAL Visual Object Classes Challenge* (IJCV 2010): where the IoU measure comes from;
#   Cordts et al., *The Cityscapes Dataset*, [arXiv:1604.01685](https://arxiv.org/abs/1604.01685); Zhou et al.,
#   *Scene Parsing through ADE20K Dataset* (CVPR 2017).
