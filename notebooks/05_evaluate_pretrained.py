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
# **random-weights** checkpoints in the real format. It labels every such number as *not comparable*.

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
PRECISION = "fp32"            # "bf16": ~2x faster on CPUs with AVX-512 BF16 (same argmax on >99.5 % of pixels)
QUICK = None                  # None: tiny settings when run by a test runner (pytest --nbmake, CI)
THREADS = None                # torch CPU threads; None: 1 when QUICK (steady on a busy shared CPU), else default

# %% [markdown]
# ## Set-up

# %%
# %matplotlib inline
import time
from dataclasses import replace

from IPython.display import display

from isanet.data.datasets import build_dataset
from isanet.evaluation.evaluate import EvalSettings, evaluate
from isanet.evaluation.metrics import format_table
from isanet.io.checkpoint import load_model
from isanet.models.zoo import get_entry, short_dataset_name
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
# ## One evaluation, step by step
#
# For each data set: find the data (or write the synthetic sample), find the checkpoint (or write a
# random-weights one), build the model from the zoo entry and load the weights **by their own key names**, take
# the entry's test settings (mode, test scale, normalisation), evaluate, and keep a few predictions to look at.
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
    path = resolve_path(checkpoint, ROOT) or downloaded.get(entry["name"])
    random_weights = path is None
    if random_weights:
        path = sample_checkpoint(entry["name"], ROOT)
    dataset = build_dataset(kind, root, split="val")
    settings = EvalSettings.from_entry(entry)
    if synthetic_data:  # the sample is 256 px wide: test near that size, not at the 2048-px scale of real data
        settings = replace(settings, scale=(1024, 256) if kind == "ade20k" else (512, 256))
    if limit is None and not device.startswith("cuda") and not synthetic_data:
        limit = 5
        print(f"CPU with real data: evaluating the first {limit} images only (set LIMIT to change this)")
    print(f"{entry['name']}: {path.name} on {len(dataset)} {kind} val images at {root}")
    model = load_model(path, entry["name"]).to(device)
    started = time.perf_counter()
    result = evaluate(model, dataset, settings, ms_flip=MS_FLIP, limit=limit, device=device, progress=False,
                      precision=PRECISION)
    samples = [dataset[i] for i in range(min(show, result["num_images"]))]
    for sample in samples:
        sample["prediction"] = settings.scores(model, sample["image"], MS_FLIP).argmax(dim=0).cpu().numpy()
    published = entry["mIoU_ms_flip"] if MS_FLIP else entry["mIoU"]
    comparable = not (synthetic_data or random_weights) and result["num_images"] == len(dataset)
    reasons = [why for why, flag in (("synthetic sample data", synthetic_data), ("random weights", random_weights),
                                     (f"only {result['num_images']} of {len(dataset)} images",
                                      result["num_images"] < len(dataset))) if flag]
    print(f"  evaluated {result['num_images']} images in {time.perf_counter() - started:.0f} s")
    return dict(entry=entry, kind=kind, dataset=dataset, result=result, samples=samples, published=published,
                comparable=comparable, reasons=reasons)


def report(run: dict) -> None:
    entry, result = run["entry"], run["result"]
    label = "COMPARABLE" if run["comparable"] else f"NOT COMPARABLE ({', '.join(run['reasons'])})"
    print(f"{entry['name']} ({entry['dataset']}, {'ms+flip' if MS_FLIP else 'single scale'}):\n"
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
                           title=f"{cityscapes['entry']['name']}{tag}"))
names = list(cityscapes["result"]["IoU"])
print(format_table({"IoU": list(cityscapes["result"]["IoU"].values()),
                    "Acc": list(cityscapes["result"]["Acc"].values())}, names))

# %% [markdown]
# Predictions next to the labels (white: ignored pixels, such as the ego vehicle):

# %%
display(plot_predictions([{"image": s["image"], "maps": [s["label"], s["prediction"]]} for s in cityscapes["samples"]],
                         cityscapes["dataset"].PALETTE, titles=["label", "prediction" + tag]))

# %% [markdown]
# ## ADE20K (150 classes)

# %%
ade20k = evaluate_published(ADE20K_MODEL, ADE20K_CHECKPOINT, ADE20K_ROOT, limit)
report(ade20k)

# %%
tag = "" if ade20k["comparable"] else " — NOT COMPARABLE"
display(plot_per_class_iou(ade20k["result"], ade20k["dataset"].PALETTE, title=f"{ade20k['entry']['name']}{tag}"))
display(plot_predictions([{"image": s["image"], "maps": [s["label"], s["prediction"]]} for s in ade20k["samples"]],
                         ade20k["dataset"].PALETTE, titles=["label", "prediction" + tag]))

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
from isanet.evaluation.metrics import format_confused, most_confused
from isanet.notebook.confusion_plot import plot_confusion

run = cityscapes  # the Cityscapes evaluation above
tag = "" if run["comparable"] else " — NOT COMPARABLE"
display(plot_confusion(run["result"]["confusion"], run["dataset"].CLASSES, title=f"{run['entry']['name']}{tag}"))
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
# same test settings (what `isanet eval` uses by default). The kit's logits match mmsegmentation 1.2.2's to 1e-5
# (`tests/test_parity.py`), so a difference beyond rounding points at the data (e.g. Cityscapes `labelTrainIds`
# made with another script) or the settings.

# %%
for run in (cityscapes, ade20k):
    label = "comparable" if run["comparable"] else f"NOT COMPARABLE: {', '.join(run['reasons'])}"
    print(f"{run['entry']['dataset']:>10}  measured {run['result']['mIoU']:6.2f}  published {run['published']:6.2f}"
          f"  ({label})")
