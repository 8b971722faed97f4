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
# **Goal:** pick any pixel of an image and look at the attention ISA actually computes for it, put the two
# sparse maps back together as the paper's product of two sparse affinity matrices, and **measure** whether a
# trained model's attention goes to the pixels that decide the answer.
#
# The explorer opens on the kit's **teaching model**: a small ISANet trained on a synthetic *context task* in
# which identical grey objects belong to the team of a coloured beacon far away in the same picture. To label
# an object the model has to carry the beacon's colour across the picture, and ISA's two steps are its only way
# to do it, so its attention has something real to show. It knows only these synthetic scenes.
#
# **You will learn**
#
# 1. what the long-range map (step 1) and the short-range map (step 2) of one pixel are, in the paper's notation
#    ($A_L$, $A_S$, block size $P$, group count $Q$) and in the code's (`down_factor`, `loc`, `glb`);
# 2. why the composed map $A_S A_L$ reaches every pixel, and why it only *approximates* influence;
# 3. what the "dense" panel is here (the ISA model's own step-1 query/key applied to all pixels) and what it is not;
# 4. how to turn "the model reads the beacon" into a number with a baseline (the cue lift), for trained weights
#    against the same architecture at random weights;
# 5. how to show that a model *uses* both hops: the relay lift of step 2, and the ablation that replaces one
#    step's attention by identity.
#
# **Prerequisites:** notebook 01 (the words *block*, *long-range group*, `down_factor`); softmax attention
# ($\mathrm{softmax}(QK^\top/\sqrt{d})V$); numpy indexing. Nothing to download: the trained teaching model is
# shipped with the kit (`isanet/notebook/assets/teaching_isa.pth`, about 2 MB, made by
# `benchmarks/make_teaching_checkpoint.py`), and the context task is written once under `data/samples/`.
#
# **Notation:** every letter used in notebooks 01–07 is on one card, [notation.md](notation.md).

# %% tags=["parameters"]
# Parameters — change these to use your own data and weights. Relative paths are taken from the repository root.
IMAGE_FILE = None        # any picture file (e.g. "my_photo.jpg") to explore; None: a validation picture
DATA_ROOT = None         # a Cityscapes / ADE20K / VOC root (e.g. "data/cityscapes"); None: the context task
DATASET = "cityscapes"   # how to read DATA_ROOT: "cityscapes", "ade20k" or "voc"
IMAGE_INDEX = 2          # which validation picture to show (when IMAGE_FILE is None); 2: a green-team context
                         # picture, where the relay shows plainest (the relay cell measures every team)
IMAGE_WIDTH = 160        # the picture is resized to this width first: 160 px is the one size the teaching model
                         # learnt; use e.g. 512 for a zoo model on a real picture
MODEL = "isanet_r50-d8_4xb2-40k_cityscapes-512x1024"  # zoo architecture of the menu's R-50 "random weights" entry
CHECKPOINT = None        # an extra checkpoint file for the menu; zoo files in data/checkpoints/ are found anyway
CHECKPOINT_DIR = "data/checkpoints"
CUE_IMAGES = None        # context validation pictures the cue measurement averages over; None: all of them (24)
CUE_QUERIES = 256        # object pixels per picture (a seeded random subset; None: all of them)
QUICK = None             # None: test-runner settings (one CPU thread) under pytest --nbmake / CI; the model and
                         # the measurement are the full ones either way (the teaching model is shipped trained)
DEVICE = "auto"          # "cpu", "cuda" or "auto"
PRECISION = "fp32"       # the backbone's: "bf16" autocast on CPUs with AVX-512 BF16 (speed-ups in benchmarks/README.md; attention stays fp32)
THREADS = None           # CPU threads; None: 1 under a test runner (steady on busy shared CPUs), else the default
EXPLORER_PAGE = "data/pages/attention_explorer.html"  # where the standalone page (no kernel needed) is saved

# %% [markdown]
# ## The formulas, and their names in the code
#
# Write the feature map (`h x w`, at 1/8 of the image) as $N = hw$ tokens $X \in \mathbb{R}^{N \times C}$.
# **Dense self-attention** gives every pixel one softmax over all $N$ pixels:
#
# $$A = \mathrm{softmax}\!\left(\frac{(X W_q)(X W_k)^\top}{\sqrt{d}}\right) \in \mathbb{R}^{N \times N},
# \qquad Y = A\,(X W_v).$$
#
# **ISA** pads the map to multiples of the block size $P = (P_h, P_w)$ — `down_factor = (loc_h, loc_w)` — so
# there are $Q = (Q_h, Q_w)$ blocks per axis — `(glb_h, glb_w)`: the padded map is $H \times W$ with
# $H = P_h Q_h$, $W = P_w Q_w$, and $N' = HW \geq N$ positions (notebooks 01 and 03 use the same letters).
# (The paper's $Q_h, Q_w$ are block counts, not the queries $X W_q$ above; the clash of letters is the paper's.)
#
# * **Step 1, long range** (`global_relation`): the $P_h P_w$ pixels that share an in-block offset form a group
#   of $Q_h Q_w$ pixels, one per block; a softmax inside each group gives the sparse matrix $A_L$
#   ($A_L[q, r] \neq 0$ only when $q$ and $r$ share an offset).
# * **Step 2, short range** (`local_relation`): the $Q_h Q_w$ blocks, each of $P_h P_w$ neighbours; a softmax
#   inside each block gives $A_S$ ($A_S[p, q] \neq 0$ only when $p$ and $q$ share a block).
#
# Step 2 runs on step 1's output, so the weights chain. The paper's "product of two sparse affinity matrices" is
#
# $$\text{composed}[p, r] \;=\; \sum_{q} A_S[p, q]\, A_L[q, r] \;=\; (A_S A_L)[p, r]$$
#
# (`isanet.analysis.probe.composed_map`; all rows at once: `attention_matrices` then `A_S @ A_L`). For a given
# $r$ only one $q$ is both in $p$'s block and in $r$'s group (the member of $p$'s block with $r$'s offset), so the
# sum has one term, and it is never zero: every pixel reaches every other in two hops.
#
# **Caveat (rollout).** The composed map multiplies the two *softmax* matrices only. Between them the model
# applies the value projection, an output projection and conv-BN-ReLU layers, which are not linear, so
# $A_S A_L$ is an *attention-flow* approximation of how much $r$ influences $p$ (like attention rollout), not a
# gradient or an exact contribution.

# %% [markdown]
# ## Set-up
#
# The notebook finds the repository root from wherever it runs (JupyterLab and `nbmake` start it in
# `notebooks/`) and reads the picture to explore: your own file when `IMAGE_FILE` is set (any JPEG/PNG, read
# by `isanet.data.datasets.read_image`), else one validation image of `DATA_ROOT`, else a validation picture of
# the **synthetic** context task (`teaching_samples`) — it says which. Either way the picture is resized to
# `IMAGE_WIDTH` (keeping its aspect ratio) with the package's `resize_image`, as notebook 01 does.

# %%
# %matplotlib inline
import contextlib

import numpy as np
import torch
from IPython.display import display

from isanet.analysis.identity_step import identity_step
from isanet.analysis.isa_matrices import attention_matrices
from isanet.analysis.probe import composed_map
from isanet.analysis.relay import (
    RelayAttention,
    relay_offsets,
    relay_over_images,
    relay_weight_map,
    strongest_relay_pixel,
)
from isanet.analysis.same_class import cue_attention, labels_at_features, same_class_over_images
from isanet.data.context import (
    BEACON,
    CONTEXT_CLASSES,
    CONTEXT_PALETTE,
    TEAM_CLASSES,
    beacon_box,
    beacon_team,
    move_beacon,
    recolour_beacon,
)
from isanet.data.datasets import read_image
from isanet.data.registry import build_dataset
from isanet.data.transforms import rescale_size, resize_image
from isanet.evaluation.inference import image_logits
from isanet.evaluation.metrics import SegMetrics
from isanet.io.checkpoint import load_model, read_checkpoint
from isanet.models.isa import Partition
from isanet.notebook.attention_explorer import AttentionExplorer
from isanet.notebook.model_menu import model_choices
from isanet.notebook.plots import plot_predictions
from isanet.notebook.quiz import check_guess
from isanet.notebook.session import configure_torch, quick_mode, repo_root, resolve_path
from isanet.notebook.teaching import (
    random_copy,
    teaching_checkpoint,
    teaching_samples,
    teaching_transform,
)

ROOT = repo_root()
quick = quick_mode(QUICK)
device = configure_torch(DEVICE, THREADS, quick)
image_file = resolve_path(IMAGE_FILE, ROOT)
if image_file is not None:
    picture, source = read_image(image_file), f"your image {image_file}"
else:
    data_root = resolve_path(DATA_ROOT, ROOT)
    validation = build_dataset(DATASET, data_root, split="val") if data_root else teaching_samples(ROOT)
    sample = validation[IMAGE_INDEX]
    picture = sample["image"]
    source = f"image {sample['path']}" + ("" if data_root else " (SYNTHETIC context task)")
context_label = sample["label"] if image_file is None and data_root is None else None  # the context task's
height, width = picture.shape[:2]
image = resize_image(picture, rescale_size(height, width, (IMAGE_WIDTH, IMAGE_WIDTH)))
print(f"{source} ({height}x{width}) shown at {image.shape[0]}x{image.shape[1]}, device {device}")

# %% [markdown]
# ## The models in the menu
#
# `model_choices` lists what is available; models are only built when you picked them. First comes the
# **teaching model**: ResNet-V1c-10 at width 16 with an ISA head, `down_factor` (8, 8) on the 20 x 20 feature map
# of a 160-px picture (padded to 24 x 24: 64 long-range groups of 3 x 3, 9 blocks of 8 x 8), trained with the
# teaching recipe (`isanet train --recipe teaching`) on the relay task (`context`).
# **What it learnt:** background and beacon are told by their own colour, but the grey objects all look alike, and
# their class is the team of the beacon, which is always far from them: too far for the small backbone's
# convolutions. So the model learnt to *read the team from the beacon* through its attention. That is all it
# knows: it has seen nothing but these synthetic scenes, and on your own photo its maps show those habits, not
# an understanding of the photo.
#
# Next comes the same architecture at **random weights** (the baseline: it shows the *pattern*, which pixels a
# pixel may read, not what a network learnt), then the R-50 `MODEL` at random weights and any published
# checkpoint found on disk. The cell prints what the shipped checkpoint records about its training.

# %%
choices = model_choices(MODEL, checkpoint=CHECKPOINT, checkpoint_dir=resolve_path(CHECKPOINT_DIR, ROOT))
for choice in choices:
    print(f"{choice.kind:>8}: {choice.label}")
meta = read_checkpoint(teaching_checkpoint())["meta"]
print(f"teaching model: recipe {meta['recipe']!r}, {meta['iter']} iterations, seed {meta['seed']}, validation "
      f"mIoU {meta['val_mIoU']:.2f} on the SYNTHETIC context task; classes {meta['dataset_meta']['classes']}")
if not any(choice.kind == "zoo" for choice in choices):
    print("no published checkpoint found: the teaching model and random weights only (download one with "
          f"`isanet download {MODEL} --dir {CHECKPOINT_DIR}`).")

# %% [markdown]
# ## Explore
#
# **Click the picture** to choose the query pixel (or hover it and use the arrow keys, one feature pixel per
# press). The orange box is the pixel's block (its short-range group), the blue
# dots its long-range group. Below, each panel is one map over the image; the white star is the query. On a
# context picture the explorer opens on a grey object pixel whose long-range group holds no beacon pixel (the
# line above the widget says how much of its short-range weight goes to its block's **relay pixels**, the
# members whose groups do hold beacon pixels); then try the beacon, and an object pixel whose group holds it.
#
# * *long range* is the pixel's row of $A_L$, *short range* its row of $A_S$, *composed* its row of $A_S A_L$
#   (weights only: see the caveat above).
# * **The "dense what-if" panel is not a dense-trained model.** It applies this ISA model's own step-1 query and
#   key projections (`global_relation`) to *all* pixels and takes one softmax: what the step-1 similarity would
#   say if it were not restricted to a group. A model trained with dense attention (`ISANetConfig(head="dense")`)
#   would have learnt other projections (`--head dense` of the teaching recipe trains one).
# * *feature cells* shows every feature pixel as the 8 x 8 image pixels it covers — exact; *bilinear* shows the
#   maps resized the way the model resizes its logits. Each panel has its own colour scale.

# %%
explorer = AttentionExplorer(image, choices, device=device, precision=PRECISION)
if context_label is not None and context_label.shape[1] == IMAGE_WIDTH:  # open where the relay is needed
    opened = explorer.capture
    feature_label = labels_at_features(context_label, opened.feature_size, opened.align_corners)
    weights = relay_weight_map(opened.isa, feature_label, [BEACON], TEAM_CLASSES)  # h x w, NaN: no relay needed
    strongest = strongest_relay_pixel(weights)
    if strongest is not None:
        explorer.select(*strongest, coords="feature")
        relays = int(relay_offsets(opened.isa.partition, feature_label, [BEACON]).sum())
        block = opened.isa.partition.loc_h * opened.isa.partition.loc_w
        print(f"{int((~np.isnan(weights)).sum())} grey-object pixels of this picture have no beacon pixel in their "
              f"long-range group; their short-range weight on their block's {relays} relay pixels (uniform share "
              f"{relays / block:.2f}): median {np.nanmedian(weights):.2f}, largest {np.nanmax(weights):.2f}. The "
              f"explorer opens on the largest, feature pixel {explorer.feature_pixel}.")
explorer.widget

# %% [markdown]
# ## The same state, from Python
#
# The widget shares its state with Python: a click in it sets `explorer.selected_pixel`, and
# `explorer.select(row, col)` picks a pixel from code (image coordinates, or `coords="feature"`) and moves the
# view; `explorer.feature_pixel` and `explorer.result` tell you what is shown. Here we pick a pixel near the top left and check two facts about the maps.

# %%
explorer.select(image.shape[0] // 4, image.shape[1] // 4)
result = explorer.result
print(explorer.pixel_text())
print("selected_pixel:", explorer.selected_pixel, " feature_pixel:", explorer.feature_pixel)

grid = explorer.capture.isa.partition
keys = {"long_range": grid.glb_h * grid.glb_w, "short_range": grid.loc_h * grid.loc_w,
        "composed": grid.padded_h * grid.padded_w, "dense": grid.height * grid.width}
print(f"keys each map can read: Q_hQ_w = {keys['long_range']}, P_hP_w = {keys['short_range']}, "
      f"N' = {keys['composed']} (padded), N = {keys['dense']} (dense: no padding)")
for name in ("long_range", "short_range", "composed", "dense"):
    attention_map = getattr(result, name)
    print(f"{name:>11}: {np.count_nonzero(attention_map.feature):5d} real keys of {keys[name]:5d}, weights sum to "
          f"{attention_map.feature.sum() + attention_map.padding_mass:.4f} (incl. {attention_map.padding_mass:.4f} "
          "on padding)")

# %% [markdown]
# Every row of weights sums to one (a softmax). The third line gives the keys each map can read, padding
# included for the ISA maps; the counts below it are the *real* (unpadded) pixels with a non-zero weight, and
# the weight that went to padding is shown separately. The pixel itself read only $Q_hQ_w + P_hP_w$ keys, yet
# the **composed** map has a weight on **every** real pixel: the two-hop argument, measured on this forward pass.
#
# ## The matrix view: two sparse factors, a full product
#
# `attention_matrices` lays the captured weights out as the paper's $A_L$ and $A_S$, $N' \times N'$ over the
# padded map, so we can count their non-zeros and multiply them. The explorer's current model runs at the
# explorer's size; its feature map is small enough for $N' \times N'$ matrices.

# %%
capture_now = explorer.capture
p = capture_now.isa.partition
long_range, short_range = attention_matrices(capture_now.isa)
product = short_range @ long_range
n_padded = p.padded_h * p.padded_w
print(f"map {p.height}x{p.width} (N = {p.height * p.width}) padded to {p.padded_h}x{p.padded_w} "
      f"(N' = {n_padded}); P = down_factor = ({p.loc_h}, {p.loc_w}), Q = (glb_h, glb_w) = ({p.glb_h}, {p.glb_w})")
print(f"non-zeros per row: A_L {int((long_range > 0).sum(1).max())} (= Q_h Q_w), "
      f"A_S {int((short_range > 0).sum(1).max())} (= P_h P_w), A_S A_L {int((product > 0).sum(1).min())} (= N')")
row, col = explorer.feature_pixel
pixel = (row + p.pad_top) * p.padded_w + col + p.pad_left
gap = (product[pixel].reshape(p.padded_h, p.padded_w) - composed_map(capture_now.isa, row, col)).abs().max()
print(f"row {pixel} of A_S @ A_L vs composed_map{(row, col)}: largest difference {float(gap):.1e}")

# %% [markdown]
# The factors hold $Q_hQ_w$ and $P_hP_w$ non-zeros per row, the product $N'$: the factorisation stores
# $N'(Q_hQ_w + P_hP_w)$ weights instead of dense attention's $N^2$, and the product of two sparse matrices is
# full. The last line
# checks the explorer's composed map against the matrix product (equal to float rounding).

# %% [markdown]
# **Build it.** The product has one term per key: $r$ lies in the long-range group of exactly one member $q$ of
# $p$'s block (the member with $r$'s in-block offset), so $\text{composed}[p, r] = A_S[p, q]\,A_L[q, r]$. Write the
# pixel's composed map from the two captured weight tensors alone (no matrices): `weights.short_range[0, b, o, o']`
# is the weight of block `b`'s member at offset `o` on its member at offset `o'`, `weights.long_range[0, o, b, k]`
# the weight of group `o`'s member in block `b` on its member in block `k`. Fill in the loop; the cell after it
# compares yours with the package's `composed_map`.

# %%
def composed_row(weights, row: int, col: int) -> torch.Tensor | None:
    """The padded two-hop map of unpadded feature pixel (row, col), from the captured ISAWeights alone."""
    p = weights.partition
    y, x = row + p.pad_top, col + p.pad_left
    offset, block = p.long_range_group(y, x), p.short_range_group(y, x)  # noqa: F841 (the blank uses them)
    out = torch.zeros(p.padded_h, p.padded_w)  # noqa: F841
    # for every member q of the block (offset o_q) and every block k: the key r is the member of block k with
    # offset o_q; out[r] = A_S[p, q] * A_L[q, r]
    return None  # your loop here, then: return out


# %%
def check_composed_row(build) -> str:
    """Your composed map against the package's, for the explorer's pixel."""
    yours, expected = build(capture_now.isa, row, col), composed_map(capture_now.isa, row, col)
    if yours is None:
        return "not written yet (the blank returns None)"
    if tuple(yours.shape) != tuple(expected.shape):
        return f"wrong shape {tuple(yours.shape)}, expected {tuple(expected.shape)} (the padded map)"
    gap = float((yours - expected).abs().max())
    return f"largest difference to composed_map: {gap:.1e}: " + ("right" if gap < 1e-6 else "wrong")


print(check_composed_row(composed_row))

# %% [markdown]
# The answer, collapsed (unfold it after trying), and the same check on it:

# %% jupyter={"source_hidden": true} tags=["from-scratch"]
def composed_row(weights, row: int, col: int) -> torch.Tensor:
    """The padded two-hop map of unpadded feature pixel (row, col), from the captured ISAWeights alone."""
    p = weights.partition
    y, x = row + p.pad_top, col + p.pad_left
    offset, block = p.long_range_group(y, x), p.short_range_group(y, x)  # the pixel's group and block
    out = torch.zeros(p.padded_h, p.padded_w)
    for member in range(p.loc_h * p.loc_w):  # q: the block's member at this in-block offset
        step_2 = weights.short_range[0, block, offset, member]  # A_S[p, q]
        for key_block in range(p.glb_h * p.glb_w):  # r: the member of key_block with q's offset
            r_y = (key_block // p.glb_w) * p.loc_h + member // p.loc_w
            r_x = (key_block % p.glb_w) * p.loc_w + member % p.loc_w
            out[r_y, r_x] = step_2 * weights.long_range[0, member, block, key_block]  # * A_L[q, r]
    return out


# %%
print(check_composed_row(composed_row))
#
# How close is the composed map to the dense what-if? One number is the correlation of the two maps:

# %%
composed, dense = result.composed.feature.ravel(), result.dense.feature.ravel()
print(f"correlation of composed and dense what-if maps for pixel {explorer.feature_pixel} "
      f"({explorer.model_label}): {np.corrcoef(composed, dense)[0, 1]:+.3f}")

# %% [markdown]
# Both maps use the model's step-1 projections (the dense what-if reuses them; the composed map adds step 2's), so
# the number says how much
# the two-hop route agrees with one softmax over the whole map for this pixel, not whether anything was learnt.
# It is one pixel of one picture; the measurement below averages over many.
#
# The model menu works from code too: `explorer.set_model(index)` runs the chosen model (once; its capture is
# cached), shows the same pixel and moves the view's menu. Here we show the same pixel with the teaching model and
# with its random twin (same architecture, same picture) and compare how *peaked* their maps are: the largest
# weight of a map divided by the mean weight of its keys is 1 for a uniform map and grows as the map
# concentrates on a few keys.

# %%
def peakedness(attention_map) -> float:
    """Largest weight over the mean weight of the keys (1 = uniform over its keys)."""
    values = attention_map.feature[attention_map.feature > 0]
    return float(values.max() / values.mean())


first = explorer.current
twin = next(index for index, choice in enumerate(choices) if choice.kind == "random")  # the teaching architecture
peaks = {}
for index in (first, twin):
    explorer.set_model(index)
    peaks[index] = {name: peakedness(getattr(explorer.result, name)) for name in ("long_range", "short_range", "dense")}
    print(f"{explorer.model_label}: peak / mean over the keys: "
          + ", ".join(f"{name} {value:.3f}" for name, value in peaks[index].items()))
sharper = [name for name in peaks[first] if peaks[first][name] > peaks[twin][name]]
print(f"the teaching model's maps are more peaked than its random twin's at this pixel in: {', '.join(sharper) or 'none'}")
explorer.set_model(first)  # the explorer above shows the first model again: pick another in its menu

# %% [markdown]
# The closer to 1, the flatter the map; the last line says, for this one pixel, which of the teaching model's
# maps concentrate more than the random twin's. A ratio near 1 for the random weights means their maps are close
# to uniform: each panel's own colour scale stretches tiny differences, so do not read the random panels' bright
# spots as preferences. Peaked is not the same as *right*: where the weight goes is what the measurement below
# counts. The explorer above is back on the teaching model; pick the random twin in its menu to compare by eye.

# %% [markdown]
# ## Take it with you: a standalone page
#
# `explorer.save_html(path)` writes what the explorer shows for the current model into **one HTML file** that
# opens from disk in any browser — no kernel, no network — and answers clicks and arrow keys by itself. It can
# do that because ISA's attention is small: the file carries *all* of it, the $N'(Q_hQ_w + P_hP_w)$
# weights of the two steps (each softmax row stored as `uint8` steps of its maximum), and computes the composed
# map in the page. Dense attention's $N^2$ affinity grows with the square of the map (the cell below prints it
# beside ISA's; at 128 x 128 it would be 1 GiB of float32), so the page stores its queries and keys (`float16`)
# and forms the clicked row with one softmax. (`isanet attention IMAGE --teaching --out page.html`
# does the same with the teaching model for any picture from the command line; `--model NAME --checkpoint FILE`
# with other weights.)

# %%
page = resolve_path(EXPLORER_PAGE, ROOT)
sizes = explorer.save_html(page)
print(f"wrote {page} ({sizes.file_bytes / 1e6:.2f} MB) for {explorer.model_label}")
print(f"ISA's affinities: {sizes.isa_numbers:,} numbers = {4 * sizes.isa_numbers / 1e3:,.0f} kB as float32 "
      f"({sizes.isa_stored_bytes / 1e3:,.0f} kB in the page)")
print(f"dense affinity:   {sizes.dense_numbers:,} numbers = {4 * sizes.dense_numbers / 1e3:,.0f} kB as float32 "
      f"({sizes.dense_numbers / sizes.isa_numbers:.0f}x ISA's)")

# %% [markdown]
# The two lines above are the lesson in numbers: ISA's whole attention for this picture is about a quarter of
# one dense affinity at this 20 x 20 map (the ratio grows with the map, notebook 03), small enough to ship in a
# web page. Open the file in a browser and click around; it says
# on the page which weights it was made with (here the teaching model, and that it knows only synthetic scenes).

# %% [markdown]
# ## Does the trained model look where the answer is? A measurement
#
# Attention pictures of trained models often *look* as if a pixel reads what matters. To make that a claim we
# need a number and a baseline. On the context task we know which pixels decide an object pixel's class: the
# **beacon** and the pixels of the object's **own team**. For a query $p$ on an object and one of its maps $m$,
# with $D(p)$ = beacon pixels $\cup$ pixels of $p$'s team:
#
# $$\text{mass}(p) = \frac{\sum_{r \in D(p)} m[r]}{\sum_{r \text{ labelled}} m[r]}, \qquad
# \text{uniform}(p) = \frac{|S_m(p) \cap D(p)|}{|S_m(p)|}, \qquad \text{lift} = \frac{\text{mass}}{\text{uniform}},$$
#
# where $S_m(p)$ is the set of keys the map *can* read (its long-range group for $A_L$, its block for $A_S$, all
# pixels for the composed and dense maps). A map that spreads its weight evenly over its keys scores exactly the
# uniform baseline, lift 1; a lift above 1 means the *weights* go to the deciding pixels beyond where the map can
# look. Since the mass is at most 1, a map's lift can never exceed $1/\text{uniform}$: the cell prints that
# ceiling too. `isanet.analysis.same_class.cue_attention` computes it (class-balanced: each team counts once)
# over object pixels of the context task's validation pictures, for the teaching model and for the same
# architecture at random weights (`random_copy`).
#
# **Predict:** on the relay task the beacon is small: few long-range groups hold it, so an object pixel's own
# long-range group rarely does. Which map then puts the most weight, against its uniform share, on the beacon
# and the object's team: $A_L$ (`"long_range"`), $A_S$ (`"short_range"`) or the composed $A_S A_L$
# (`"composed"`)? Write it into `guess_map` before running the cell after it.

# %%
guess_map = None   # your guess: "long_range", "short_range" or "composed"

# %%
cue_samples = teaching_samples(ROOT)[:CUE_IMAGES]
transform = teaching_transform()
trained_model = load_model(teaching_checkpoint()).eval()
random_model = random_copy(trained_model, seed=0)  # the same architecture, mmseg's initialisation, seeded
cue = {}
for name, model in (("trained", trained_model), ("random", random_model)):
    measured = cue[name] = cue_attention(model.to(device), cue_samples, transform, queries=CUE_QUERIES)
    print(f"{name}: {measured.num_queries} object pixels over {len(cue_samples)} SYNTHETIC context pictures, class-"
          f"balanced\n{measured.table(balanced=True)}\n")
trained_lifts = {map_name: value.lift for map_name, value in cue["trained"].balanced().items()
                 if map_name in ("long_range", "short_range", "composed")}
print(check_guess(guess_map, max(trained_lifts, key=trained_lifts.get), "the map with the largest lift for the "
                  "teaching model (" + ", ".join(f"{name} x{lift:.2f}" for name, lift in trained_lifts.items()) +
                  "): a pixel whose own group holds no beacon pixel reads it in two hops, through the composed map."))

# %% [markdown]
# The next cell boils the tables down to one lift per map, with its ceiling, and checks that the random weights
# are a real control (every lift within 10 % of 1).

# %%
balanced = {name: measured.balanced() for name, measured in cue.items()}
for map_name in ("long_range", "short_range", "composed"):
    trained, random_lift = balanced["trained"][map_name], balanced["random"][map_name].lift
    print(f"{map_name:>11}: trained x{trained.lift:.2f}, random x{random_lift:.2f}  (ceiling 1/uniform = "
          f"x{1 / trained.uniform:.2f})")
deviation = max(abs(value.lift - 1) for value in balanced["random"].values())
print(f"random weights: largest |lift - 1| over the maps = {deviation:.3f}")
assert deviation < 0.1, "freshly initialised weights should not prefer the deciding pixels (lift within 10 % of 1)"

# %% [markdown]
# **Reading it.** The random-weights lines are the control: fresh softmax weights know nothing of beacons or
# teams, so their lifts sit at 1 (the cell checks it). For the teaching model, compare each map's lift with 1 and
# with its ceiling. The composed map is where a two-hop model should show the cue. The long-range map can lift
# it too without reading the beacon: the cue counts the pixels of the object's own team, and an object spanning
# several blocks has pixels in its own long-range group, so a lift there says the step prefers same-team pixels,
# not that it found the beacon (across seeds of the recipe this lift ranges from below 1 to nearly 4:
# `benchmarks/README.md`). A short-range block around an object pixel holds a large part of that object, so its
# uniform share is high and even perfect weights lift it little (the printed ceiling is one over that share).
#
# ## Is the cue relayed? Two measurements that can say no
#
# A lift says where the weights go, not that the model *uses* them. Two sharper tests:
#
# * **The relay.** Take the object pixels whose long-range group holds no beacon pixel (they cannot read it in
#   step 1). In step 2 their block holds, for each long-range group that has beacon pixels, one **relay pixel**
#   that read the beacon in step 1. `isanet.analysis.relay.relay_over_images` sums those pixels' short-range
#   weight on their block's relay pixels and divides by the share uniform weights would give them.
# * **The ablation** (`isanet.analysis.identity_step`): replace one step's attention by identity (each pixel
#   attends only to itself; every projection kept) and measure mIoU again. A step the model needs costs points
#   when it is gone; a step it ignores costs none. The one-hop task's models lost 0.02 to 2.15 mIoU
#   without their short-range step (notebook 04 prints them): they barely used it.

# %%
by_team = {team: [item for item in cue_samples if (item["label"] == team).any()] for team in TEAM_CLASSES}
trained_by_team = {team: relay_over_images(trained_model, pictures, transform, [BEACON], TEAM_CLASSES)
                   for team, pictures in by_team.items()}
trained_relay = sum(trained_by_team.values(), RelayAttention(0, 0.0, 0.0))  # one team a picture: the sum is all
random_relay = relay_over_images(random_model, cue_samples, transform, [BEACON], TEAM_CLASSES)
print(f"relay: {trained_relay.queries} object pixels whose long-range group holds no beacon pixel; their "
      f"short-range weight on the relay pixels over the uniform share: trained x{trained_relay.lift:.2f}, "
      f"random x{random_relay.lift:.2f}")
for team, measured in trained_by_team.items():  # the same measurement on each team's pictures alone
    if by_team[team]:
        print(f"  {CONTEXT_CLASSES[team]:>10} pictures ({len(by_team[team])}): trained x{measured.lift:.2f}")


def predicted(model, item, step=None) -> np.ndarray:
    """The class map ``model`` predicts for ``item``, ``step``'s attention replaced by identity (None: intact)."""
    with identity_step(model, step) if step else contextlib.nullcontext():
        logits = image_logits(model, item["image"], transform.scale, transform.mean, transform.std)
    return logits.argmax(dim=0).cpu().numpy()


def context_metrics(model, step=None) -> dict:
    """IoU per class and mIoU of ``model`` on the cue pictures, ``step``'s attention replaced by identity."""
    metrics = SegMetrics(len(CONTEXT_CLASSES))
    for item in cue_samples:
        metrics.update(torch.from_numpy(predicted(model, item, step)), item["label"])
    return metrics.compute()


ablation = {step or "intact": context_metrics(trained_model, step)["mIoU"]
            for step in (None, "long-range", "short-range")}
print(f"teaching model on {len(cue_samples)} SYNTHETIC pictures: " + ", ".join(
    f"{name} {value:.2f}" for name, value in ablation.items()) + " mIoU")
for step in ("long-range", "short-range"):
    print(f"  without its {step} step it loses {ablation['intact'] - ablation[step]:.2f} mIoU points")

# %% [markdown]
# **Reading it.** A relay lift well above 1 says that the object pixels that cannot see the beacon in step 1
# look, in step 2, at the pixels of their block that could; random weights sit at 1. Read the lines per team
# too: a model need not relay every team the same way. A team it predicts when nothing tells it otherwise needs
# no relay at all, and a relay pixel whose value differs enough can pass the cue on at its uniform share of the
# weight, with no lift. So the lift says where step 2 looks, not what it carries. The ablation lines say whether
# the steps matter: if both cost many points, the model needs both hops, as the relay task was built to demand.
# (Without a step, the rest of the network still expects its output, so an ablated model can do worse than one
# trained without context; notebook 04's reference run prints what the head without a context module scores.)
#
# The last cell of this section says how well the intact model segments these pictures, class by class.

# %%
metrics = context_metrics(trained_model)
teams = ", ".join(f"{CONTEXT_CLASSES[c]} {metrics['IoU'][c]:.1f}" for c in TEAM_CLASSES)
print(f"teaching model on the same {len(cue_samples)} pictures: mIoU {metrics['mIoU']:.2f}; team IoU: {teams}; "
      f"beacon {metrics['IoU'][BEACON]:.1f}")
object_teams = np.concatenate([item["label"][item["label"] >= TEAM_CLASSES[0]] for item in cue_samples])
one_team = np.bincount(object_teams).max() / object_teams.size
print(f"a model that cannot read the beacon, guessing its best single team for every object, is right on "
      f"{one_team:.0%} of these object pixels")

# %% [markdown]
# The team IoUs say how well the model gets the teams. The last line is another yardstick, a share of object
# pixels rather than an IoU: what guessing the most common team for every object would get right on these
# pictures. The beacon's own colour decides it, but it is the smallest class (one
# 16-px square a picture), so a few wrong pixels at its edge cost much of its IoU.
#
# And as pictures: three validation pictures, their labels, and what the model predicts intact and with each
# step's attention replaced by identity (object colour = predicted team).

# %%
steps = (None, "long-range", "short-range")
rows = [{"image": item["image"], "maps": [item["label"], *(predicted(trained_model, item, step) for step in steps)]}
        for item in cue_samples[:3]]
display(plot_predictions(rows, CONTEXT_PALETTE, titles=["label", "predicted", "without long range",
                                                        "without short range"]))
for item, shown in zip(cue_samples[:3], rows):
    objects = item["label"] >= TEAM_CLASSES[0]
    right = [f"{(prediction[objects] == item['label'][objects]).mean():.0%}" for prediction in shown["maps"][1:]]
    team = CONTEXT_CLASSES[TEAM_CLASSES[beacon_team(item["image"], item["label"])]]
    print(f"beacon {team:>10}: object pixels on the right team: intact {right[0]}, without long range {right[1]}, "
          f"without short range {right[2]}")

# %% [markdown]
# The lines under the figure count, per picture, the object pixels on the right team. Intact, the objects take
# the beacon's colour. Without a step, the objects of a picture whose beacon is not red mostly take a wrong team;
# where the beacon is red the ablated model can still be right, because red is what it calls objects when it
# cannot read the beacon (the red picture's line shows it for both steps; solution 5 shows it across colours for
# the short-range step). The figure is the ablation lines above, picture
# by picture.
#
# **See it live.** The same model also runs in a web page, in your browser (onnxruntime-web): drag the beacon,
# change its colour, and the page runs the model again and redraws the predicted teams and the three maps of the
# pixel you chose. On the kit's site (`python3 kit.py site`, then `python3 kit.py site --serve`) that page sits
# right below this figure. From here, `isanet attention --teaching --out live.html` writes it with its model
# beside it; serve its folder (`python3 -m http.server`) and open `live.html`. Opened straight from disk, the page
# can only show what the kit computed for its first picture, and says so.
#
# Whether a published model's attention prefers its class is the same kind of measurement on real data:
# `same_class_over_images` takes any model and real labelled `{"image", "label"}` samples.

# %% [markdown]
# ## Summary
#
# * A pixel's ISA attention is two sparse rows: $A_L$ over its long-range group ($Q_hQ_w$ keys, one per block)
#   and $A_S$ over its block ($P_hP_w$ keys); `down_factor` is $P$ = (`loc_h`, `loc_w`), $Q$ = (`glb_h`, `glb_w`).
# * Their product $A_S A_L$ has no zero: two hops reach every pixel. It composes the softmax weights only, so it
#   approximates influence (rollout); projections and conv-BN-ReLU in between are left out.
# * The dense panel is a what-if with the ISA model's own step-1 projections, not a dense-trained model.
# * The teaching model learnt one synthetic task: read an object's team from a far beacon. It knows nothing else.
# * "It looks at the beacon" is a measurable claim: the attention mass on the pixels that decide the answer
#   (beacon and own team) against the uniform share of the keys a map can read, with random weights as the
#   control; the lifts printed above are the answer, and each map's ceiling $1/\text{uniform}$ bounds them.
# * Where the weights go is not what the model uses: the relay lift says where step 2 looks, the identity-step
#   ablation says which steps the model needs (the printed losses).

# %% [markdown]
# ## Exercises
#
# Five exercises, each marked easy, medium or hard. Each is followed by its worked solution, collapsed: click the bar on the
# left of the cell (or the three dots) to open it.

# %% [markdown]
# 1. **(easy)** For the explorer's feature map, compute by hand the padding, $Q$ and the number of keys a pixel
#    reads in each step and in dense attention; check with `Partition`.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Solution 1: padding, Q and key counts of the explorer's feature map
h, w = explorer.result.feature_size
loc_h, loc_w = p.loc_h, p.loc_w
glb_h, glb_w = -(-h // loc_h), -(-w // loc_w)               # ceil: Q = blocks per axis after padding
pad_h, pad_w = glb_h * loc_h - h, glb_w * loc_w - w
by_hand = Partition(h, w, loc_h, loc_w)
assert (by_hand.glb_h, by_hand.glb_w, by_hand.padded_h - h, by_hand.padded_w - w) == (glb_h, glb_w, pad_h, pad_w)
print(f"{h}x{w} map, P = ({loc_h}, {loc_w}): pad {pad_h} rows and {pad_w} columns, Q = ({glb_h}, {glb_w}); "
      f"keys: step 1 {glb_h * glb_w}, step 2 {loc_h * loc_w}, dense {h * w}")

# %% [markdown]
# 2. **(easy)** For the pixel shown, find the one $q$ that carries $\text{composed}[p, r]$ for $r$ = the top-left
#    real pixel (not padding), and check $A_S[p, q]\,A_L[q, r]$ equals the composed weight.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Solution 2: the one q of p's block that shares r's in-block offset
r_y, r_x = p.pad_top, p.pad_left                             # top-left real pixel, in padded coordinates
p_y, p_x = row + p.pad_top, col + p.pad_left
q_y = (p_y // p.loc_h) * p.loc_h + r_y % p.loc_h             # p's block, r's offset
q_x = (p_x // p.loc_w) * p.loc_w + r_x % p.loc_w
p_id, q_id, r_id = (y * p.padded_w + x for y, x in ((p_y, p_x), (q_y, q_x), (r_y, r_x)))  # row-major, padded
term = short_range[p_id, q_id] * long_range[q_id, r_id]
print(f"q = ({q_y}, {q_x}); A_S[p, q] A_L[q, r] = {float(term):.3e}, composed[p, r] = "
      f"{float(product[p_id, r_id]):.3e}")
assert torch.isclose(term, product[p_id, r_id])

# %% [markdown]
# 3. **(medium)** Which map of the teaching model lifts the deciding pixels (beacon and own team) most
#    *relative to its baseline* (class-balanced), and which puts the most raw mass on them? Why can those differ?

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Solution 3: largest lift vs largest raw mass, among the model's own maps (the dense what-if is not one)
measured = {name: values for name, values in balanced["trained"].items() if name != "dense"}
by_lift = max(measured, key=lambda name: measured[name].lift)
by_mass = max(measured, key=lambda name: measured[name].mass)
print(f"largest lift: {by_lift} (x{measured[by_lift].lift:.2f}); largest raw mass: {by_mass} "
      f"({measured[by_mass].mass:.2f})")
print(("here one map leads both; " if by_lift == by_mass else "two different maps; ") + "they can differ because "
      "the lift divides the raw mass by the uniform share, the mass a map gets just from where it may look: "
      + ", ".join(f"{name} {values.uniform:.2f}" for name, values in measured.items())
      + ". A map whose keys hold more deciding pixels to begin with needs less lift for the same raw mass.")

# %% [markdown]
# 4. **(hard)** Measure the cue lift of a different "dense what-if": the teaching model's step-2 projections
#    (`local_relation`) applied to all pixels (`dense_block=` of `same_class_over_images`, with the object pixels
#    as queries and the beacon as cue, as `cue_attention` sets them). Does it lift the deciding pixels more or
#    less than the step-1 what-if?

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Solution 4: the step-2 projections as the dense what-if
local_what_if = same_class_over_images(trained_model, cue_samples, transform, queries=CUE_QUERIES,
                                       dense_block=trained_model.decode_head.local_relation,
                                       query_classes=TEAM_CLASSES, cue_classes=(BEACON,))
step1, step2 = balanced["trained"]["dense"], local_what_if.balanced()["dense"]
print(f"dense what-if, class-balanced cue lift: step-1 projections x{step1.lift:.2f}, step-2 projections "
      f"x{step2.lift:.2f} ({'more' if step2.lift > step1.lift else 'less'} with step 2's)")

# %% [markdown]
# 5. **(medium)** Change the cue and watch the answer follow it: give the beacon of one validation picture each
#    team's colour in turn (`isanet.data.context.recolour_beacon`, which also relabels the objects) and move it to
#    another free corner (`move_beacon`). On what share of the object pixels does the teaching model predict the
#    beacon's team? And with the short-range step replaced by identity?

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Solution 5: recolour and move the beacon; the share of object pixels on the new team

def team_share(model, picture, label, step=None) -> tuple[float, str]:
    """Share of the object pixels ``model`` labels with their (new) team, and the class it gives most of them."""
    objects = label >= TEAM_CLASSES[0]
    on_objects = predicted(model, {"image": picture}, step)[objects]
    return float((on_objects == label[objects]).mean()), CONTEXT_CLASSES[int(np.bincount(on_objects).argmax())]


scene = cue_samples[0]
top, left, size, _ = beacon_box(scene["label"])
side = scene["label"].shape[0]
corners = [(y, x) for y in (2, side - size - 2) for x in (2, side - size - 2)
           if (y, x) != (top, left) and not (scene["label"][y:y + size, x:x + size] >= TEAM_CLASSES[0]).any()]
original = beacon_team(scene["image"], scene["label"])
for team in range(len(TEAM_CLASSES)):
    picture, label = recolour_beacon(scene["image"], scene["label"], team)
    if corners:
        picture, label = move_beacon(picture, label, *corners[0])
    (intact, _), (ablated, mostly) = (team_share(trained_model, picture, label, step) for step in (None, "short-range"))
    print(f"beacon {CONTEXT_CLASSES[TEAM_CLASSES[team]]:>10}" + (" (its own colour)" if team == original else "")
          + f", moved to {corners[0] if corners else 'nowhere (no free corner)'}: object pixels on that team "
          f"{intact:.0%} intact, {ablated:.0%} without the short-range step (which calls most of them {mostly})")
print("A model that gives every object one team scores 100 % on that team whatever the beacon says: read the "
      "ablated column across the three colours, not one line alone.")

# %% [markdown]
# ## Further reading
#
# * Huang et al., *Interlaced Sparse Self-Attention for Semantic Segmentation*,
#   [arXiv:1907.12273](https://arxiv.org/abs/1907.12273): the method section (long-range and short-range
#   attention as two sparse affinity matrices, their product, the complexity) and the ablations on the order of
#   the two steps and on the partition size.
# * mmsegmentation `mmseg/models/decode_heads/isa_head.py`: the `view`/`permute` lines of the two steps this kit
#   matches; openseg.pytorch `lib/models/modules/isa_block.py`: the authors' block.
# * Wang et al., *Non-local Neural Networks*, [arXiv:1711.07971](https://arxiv.org/abs/1711.07971): the dense
#   self-attention block ISA factorises.
# * Abnar & Zuidema, *Quantifying Attention Flow in Transformers*, [arXiv:2005.00928](https://arxiv.org/abs/2005.00928):
#   attention rollout, the idea behind the composed map, and its limits.
# * Huang et al., *CCNet: Criss-Cross Attention*, [arXiv:1811.11721](https://arxiv.org/abs/1811.11721) and Child et
#   al., *Sparse Transformers*, [arXiv:1904.10509](https://arxiv.org/abs/1904.10509): other two-step sparse
#   patterns that reach every position.
