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
# # 02 · Attention explorer: click a pixel, see what it attends to
#
# **Goal:** pick any pixel of an image and look at the attention ISA actually computes for it, next to what
# dense self-attention would compute:
#
# 1. **long range** (step 1): the pixel's weights over its long-range group, one pixel per block;
# 2. **short range** (step 2): its weights over the pixels of its own block;
# 3. **composed two-hop**: both steps chained, `composed[r] = short[p, q] · long[q, r]` — the way information
#    from *every* pixel `r` reaches `p` in two hops;
# 4. **dense**: one softmax over the whole map, the thing ISA replaces.
#
# The maps come from a real forward pass (`isanet.analysis.probe.capture`) of the model you pick: random weights,
# a sample-trained checkpoint (written by notebook 04), or any published checkpoint you have downloaded into
# `data/checkpoints/` (`isanet download <name> --dir data/checkpoints`).
#
# Read notebook 01 first if the words *long-range group* and *block* are new.

# %% tags=["parameters"]
# Parameters — change these to use your own data and weights. Relative paths are taken from the repository root.
DATA_ROOT = None         # a Cityscapes / ADE20K / VOC root (e.g. "data/cityscapes"); None: synthetic sample data
DATASET = "cityscapes"   # how to read DATA_ROOT: "cityscapes", "ade20k" or "voc"
IMAGE_INDEX = 0          # which validation image to show
IMAGE_WIDTH = 512        # the picture is resized to this width before the model sees it (small = fast on a CPU)
MODEL = "isanet_r50-d8_4xb2-40k_cityscapes-512x1024"  # zoo architecture of the "random weights" model
CHECKPOINT = None        # an extra checkpoint file for the menu; zoo files in data/checkpoints/ are found anyway
CHECKPOINT_DIR = "data/checkpoints"
SAMPLE_CHECKPOINT = "data/samples/checkpoints/isanet_r18_finetuned_sample_voc.pth"  # written by notebook 04
DEVICE = "auto"          # "cpu", "cuda" or "auto"
PRECISION = "fp32"       # the backbone's: "bf16" is ~2x faster on CPUs with AVX-512 BF16 (attention stays fp32)
THREADS = None           # CPU threads; None: 1 under a test runner (steady on busy shared CPUs), else the default
EXPLORER_PAGE = "data/pages/attention_explorer.html"  # where the standalone page (no kernel needed) is saved

# %% [markdown]
# ## Set-up
#
# The notebook finds the repository root from wherever it runs (JupyterLab and `nbmake` start it in
# `notebooks/`), reads one validation image, and falls back to a small **synthetic** sample in the real
# Cityscapes layout when `DATA_ROOT` is not set — it says so when it does.

# %%
import numpy as np

from isanet.data.datasets import build_dataset
from isanet.data.transforms import rescale_size, resize_image
from isanet.notebook.attention_explorer import AttentionExplorer, model_choices
from isanet.notebook.session import (
    configure_torch,
    repo_root,
    resolve_path,
    sample_dataset,
)

ROOT = repo_root()
device = configure_torch(DEVICE, THREADS)
data_root = resolve_path(DATA_ROOT, ROOT)
if data_root is None:
    data_root = sample_dataset(DATASET, ROOT, num_train=1, num_val=2, size=IMAGE_WIDTH)
dataset = build_dataset(DATASET, data_root, split="val")
sample = dataset[IMAGE_INDEX]
height, width = sample["image"].shape[:2]
image = resize_image(sample["image"], rescale_size(height, width, (IMAGE_WIDTH, IMAGE_WIDTH)))
print(f"image {sample['path']} ({height}x{width}) shown at {image.shape[0]}x{image.shape[1]}, device {device}")

# %% [markdown]
# ## The models in the menu
#
# `model_choices` lists what is available; models are only built when you pick them. Without any checkpoint
# the menu has the random-weights model only — random attention still shows the *pattern* (which pixels
# a pixel may read), not what a trained network has learned to look at.

# %%
choices = model_choices(MODEL, checkpoint=CHECKPOINT, checkpoint_dir=resolve_path(CHECKPOINT_DIR, ROOT),
                        sample_checkpoint=resolve_path(SAMPLE_CHECKPOINT, ROOT))
for choice in choices:
    print(f"{choice.kind:>6}: {choice.label}")
if all(choice.kind == "random" for choice in choices):
    print("NO CHECKPOINT FOUND: the explorer starts with RANDOM WEIGHTS (download one with "
          "`isanet download isanet_r50-d8_512x1024_40k_cityscapes --dir data/checkpoints`, or run notebook 04).")

# %% [markdown]
# ## Explore
#
# **Click the picture** to choose the query pixel (or hover it and use the arrow keys, or move the *row* /
# *col* sliders, which count feature pixels). The orange box is the pixel's block (its short-range group), the
# blue dots its long-range group. Below, each panel is one map over the image; the white star is the query.
#
# * *feature cells* shows every feature pixel as the 8 x 8 image pixels it covers — exact; *bilinear* shows the
#   maps resized the way the model resizes its logits.
# * Each panel has its own colour scale; the title gives the number of keys (pixels with non-zero weight).

# %%
explorer = AttentionExplorer(image, choices, device=device, precision=PRECISION)
explorer.widget

# %% [markdown]
# ## The same state, from Python
#
# The widget is plain Python underneath: `explorer.select(row, col)` picks a pixel (image coordinates, or
# `coords="feature"`), and `explorer.selected_pixel`, `explorer.feature_pixel` and `explorer.result` tell you
# what is shown. Here we pick a pixel near the top left and check two facts about the maps.

# %%
explorer.select(image.shape[0] // 4, image.shape[1] // 4)
result = explorer.result
print(explorer.pixel_text())
print("selected_pixel:", explorer.selected_pixel, " feature_pixel:", explorer.feature_pixel)

for name in ("long_range", "short_range", "composed", "dense"):
    attention_map = getattr(result, name)
    print(f"{name:>11}: {np.count_nonzero(attention_map.feature):5d} keys, weights sum to "
          f"{attention_map.feature.sum() + attention_map.padding_mass:.4f} (incl. {attention_map.padding_mass:.4f} "
          "on padding)")

# %% [markdown]
# Every row of weights sums to one (a softmax), and the **composed** map reaches **every** pixel even though
# the pixel itself only read `glb_h·glb_w + loc_h·loc_w` keys: that is the two-hop argument of the paper,
# measured. How close is it to the dense map? A simple check is the correlation of the two maps:

# %%
composed, dense = result.composed.feature.ravel(), result.dense.feature.ravel()
print(f"correlation of composed and dense maps for pixel {explorer.feature_pixel}: "
      f"{np.corrcoef(composed, dense)[0, 1]:+.3f}")
print("(with random weights this says little; with a trained checkpoint it shows how much of the dense "
      "pattern the factorisation keeps)")

# %% [markdown]
# The model menu is an ordinary dropdown too: setting `explorer.model_menu.value` runs the chosen model (once;
# its capture is cached) and redraws the same pixel. Here we switch to a trained checkpoint when one is listed.

# %%
trained = [index for index, choice in enumerate(choices) if choice.kind != "random"]
if trained:
    explorer.model_menu.value = trained[0]
    print(f"now showing {explorer.model_label}: {explorer.pixel_text()}")
else:
    print("only random weights available: nothing to switch to")

# %% [markdown]
# ## Take it with you: a standalone page
#
# `explorer.save_html(path)` writes what the explorer shows for the current model into **one HTML file** that
# opens from disk in any browser — no kernel, no network — and answers clicks and arrow keys by itself. It can
# do that because ISA's attention is small: the file carries *all* of it, the `HW·(glb_h·glb_w + loc_h·loc_w)`
# weights of the two steps (each softmax row stored as `uint8` steps of its maximum), and computes the composed
# map in the page. Dense attention's `(HW)²` affinity would not fit, so the page stores its queries and keys
# (`float16`) and forms the clicked row with one softmax. (`isanet attention IMAGE --model NAME --out page.html`
# does the same for any picture from the command line.)

# %%
page = resolve_path(EXPLORER_PAGE, ROOT)
sizes = explorer.save_html(page)
print(f"wrote {page} ({sizes.file_bytes / 1e6:.2f} MB) for {explorer.model_label}")
print(f"ISA's affinities: {sizes.isa_numbers:,} numbers = {4 * sizes.isa_numbers / 1e3:,.0f} kB as float32 "
      f"({sizes.isa_stored_bytes / 1e3:,.0f} kB in the page)")
print(f"dense affinity:   {sizes.dense_numbers:,} numbers = {4 * sizes.dense_numbers / 1e3:,.0f} kB as float32 "
      f"({sizes.dense_numbers / sizes.isa_numbers:.0f}x ISA's)")

# %% [markdown]
# The two lines above are the lesson in numbers: ISA's whole attention for this picture is a small fraction of
# one dense affinity, small enough to ship in a web page. Open the file in a browser and click around; it says
# on the page which weights it was made with.

# %% [markdown]
# ## What to try
#
# * Click pixels in different blocks and watch the blue dots (the long-range group) move with the pixel's
#   in-block offset, while the orange block moves with the block.
# * Pick a trained checkpoint in the menu: the long-range map starts to prefer pixels of the same class.
# * Notebook 03 measures what this factorisation saves in memory and time.
