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
# trained model's attention prefers the pixels of the query's own class.
#
# **You will learn**
#
# 1. what the long-range map (step 1) and the short-range map (step 2) of one pixel are, in the paper's notation
#    ($A_L$, $A_S$, block size $P$, group count $Q$) and in the code's (`down_factor`, `loc`, `glb`);
# 2. why the composed map $A_S A_L$ reaches every pixel, and why it only *approximates* influence;
# 3. what the "dense" panel is here (the ISA model's own step-1 query/key applied to all pixels) and what it is not;
# 4. how to turn "the maps light up the same class" into a number with a baseline, for random and trained weights.
#
# **Prerequisites:** notebook 01 (the words *block*, *long-range group*, `down_factor`); softmax attention
# ($\mathrm{softmax}(QK^\top/\sqrt{d})V$); numpy indexing. Nothing to download: without data or checkpoints the
# notebook uses synthetic sample data and trains its own small model once (cached under `data/samples/`).
#
# **Notation:** every letter used in notebooks 01–07 is on one card, [notation.md](notation.md).

# %% tags=["parameters"]
# Parameters — change these to use your own data and weights. Relative paths are taken from the repository root.
IMAGE_FILE = None        # any picture file (e.g. "my_photo.jpg") to explore; None: an image of DATA_ROOT
DATA_ROOT = None         # a Cityscapes / ADE20K / VOC root (e.g. "data/cityscapes"); None: synthetic sample data
DATASET = "cityscapes"   # how to read DATA_ROOT: "cityscapes", "ade20k" or "voc"
IMAGE_INDEX = 0          # which validation image to show (when IMAGE_FILE is None)
IMAGE_WIDTH = 512        # the picture is resized to this width before the model sees it (small = fast on a CPU)
MODEL = "isanet_r50-d8_4xb2-40k_cityscapes-512x1024"  # zoo architecture of the "random weights" model
CHECKPOINT = None        # an extra checkpoint file for the menu; zoo files in data/checkpoints/ are found anyway
CHECKPOINT_DIR = "data/checkpoints"
SAMPLE_CHECKPOINT = None  # a sample-trained checkpoint file; None: the shared sample fine-tune (trained once, cached)
SAMPLE_ITERS = None      # its iterations; None: 20 in quick mode, else 300 (about 2 min on one CPU thread, once)
SAME_CLASS_IMAGES = None  # sample validation images the same-class measurement averages over; None: 2 quick, else 8
SAME_CLASS_QUERIES = 256  # query pixels per image (a seeded random subset; None: all labelled pixels)
QUICK = None             # None: tiny settings when run by a test runner (pytest --nbmake, CI)
DEVICE = "auto"          # "cpu", "cuda" or "auto"
PRECISION = "fp32"       # the backbone's: "bf16" is ~2x faster on CPUs with AVX-512 BF16 (attention stays fp32)
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
# by `isanet.data.datasets.read_image`), else one validation image of `DATA_ROOT`, else a small **synthetic**
# sample in the real Cityscapes layout — it says so when it does. Either way the picture is resized to
# `IMAGE_WIDTH` (keeping its aspect ratio) with the package's `resize_image`, as notebook 01 does.

# %%
import numpy as np
import torch

from isanet import ISANet
from isanet.analysis.probe import composed_map
from isanet.analysis.same_class import same_class_over_images
from isanet.data.build import build_dataset
from isanet.data.datasets import read_image
from isanet.data.transforms import TestTransform, rescale_size, resize_image
from isanet.engine.trainer import NOTEBOOK_SAMPLE_DATA, NOTEBOOK_SETTINGS
from isanet.evaluation.inference import predict_image
from isanet.evaluation.metrics import SegMetrics
from isanet.io.checkpoint import load_model
from isanet.models.interlaced import Partition, attention_matrices
from isanet.notebook.attention_explorer import AttentionExplorer
from isanet.notebook.model_menu import model_choices
from isanet.notebook.plots import IMAGENET_MEAN, IMAGENET_STD
from isanet.notebook.sample_finetune import FULL_ITERS, QUICK_ITERS, sample_trained_checkpoint
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
image_file = resolve_path(IMAGE_FILE, ROOT)
if image_file is not None:
    picture, source = read_image(image_file), f"your image {image_file}"
else:
    data_root = resolve_path(DATA_ROOT, ROOT)
    if data_root is None:
        data_root = sample_dataset(DATASET, ROOT, num_train=1, num_val=2, size=IMAGE_WIDTH)
    sample = build_dataset(DATASET, data_root, split="val")[IMAGE_INDEX]
    picture, source = sample["image"], f"image {sample['path']}"
height, width = picture.shape[:2]
image = resize_image(picture, rescale_size(height, width, (IMAGE_WIDTH, IMAGE_WIDTH)))
print(f"{source} ({height}x{width}) shown at {image.shape[0]}x{image.shape[1]}, device {device}")

# %% [markdown]
# ## The models in the menu
#
# `model_choices` lists what is available; models are only built when you picked them. The menu always has
# **random weights** (they show the *pattern*, which pixels a pixel may read, not what a network learnt) and a
# **sample-trained** model: a tiny R-18 ISANet fine-tuned on the synthetic VOC sample by the same package call
# notebook 04 uses (`sample_trained_checkpoint`: trained on first use, then read from `data/samples/`). It has
# learnt a toy task, nothing about real scenes; the cell prints how many iterations it had (few in quick mode).

# %%
sample_iters = SAMPLE_ITERS or (QUICK_ITERS if quick else FULL_ITERS)
sample_path = resolve_path(SAMPLE_CHECKPOINT, ROOT) or sample_trained_checkpoint(ROOT, iters=sample_iters)
print(f"sample-trained model: {sample_iters} iterations" + (" (QUICK mode)" if quick else ""))
choices = model_choices(MODEL, checkpoint=CHECKPOINT, checkpoint_dir=resolve_path(CHECKPOINT_DIR, ROOT),
                        sample_checkpoint=sample_path)
for choice in choices:
    print(f"{choice.kind:>6}: {choice.label}")
if not any(choice.kind == "zoo" for choice in choices):
    print("no published checkpoint found: random and SAMPLE-TRAINED weights only (download one with "
          f"`isanet download {MODEL} --dir {CHECKPOINT_DIR}`).")

# %% [markdown]
# ## Explore
#
# **Click the picture** to choose the query pixel (or hover it and use the arrow keys, or move the *row* /
# *col* sliders, which count feature pixels). The orange box is the pixel's block (its short-range group), the
# blue dots its long-range group. Below, each panel is one map over the image; the white star is the query.
#
# * *long range* is the pixel's row of $A_L$, *short range* its row of $A_S$, *composed* its row of $A_S A_L$
#   (weights only: see the caveat above).
# * **The "dense what-if" panel is not a dense-trained model.** It applies this ISA model's own step-1 query and
#   key projections (`global_relation`) to *all* pixels and takes one softmax: what the step-1 similarity would
#   say if it were not restricted to a group. A model trained with dense attention (`ISANetConfig(head="dense")`)
#   would have learnt other projections; notebook 04 trains one.
# * *feature cells* shows every feature pixel as the 8 x 8 image pixels it covers — exact; *bilinear* shows the
#   maps resized the way the model resizes its logits. Each panel has its own colour scale.

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
# Every row of weights sums to one (a softmax). The first line gives the keys each map can read, padding
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
#
# How close is the composed map to the dense what-if? One number is the correlation of the two maps:

# %%
composed, dense = result.composed.feature.ravel(), result.dense.feature.ravel()
print(f"correlation of composed and dense what-if maps for pixel {explorer.feature_pixel} "
      f"({explorer.model_label}): {np.corrcoef(composed, dense)[0, 1]:+.3f}")

# %% [markdown]
# With random weights this says little about learning: both maps come from the same random projections. It
# is one pixel of one image; the measurement below averages over many.
#
# The model menu is an ordinary dropdown too: setting `explorer.model_menu.value` runs the chosen model (once;
# its capture is cached) and redraws the same pixel. Here we show the same pixel with the sample-trained model
# and compare how *peaked* each model's maps are: the largest weight of a map divided by the mean weight of its
# keys is 1 for a uniform map and grows as the map concentrates on a few keys.

# %%
def peakedness(attention_map) -> float:
    """Largest weight over the mean weight of the keys (1 = uniform over its keys)."""
    values = attention_map.feature[attention_map.feature > 0]
    return float(values.max() / values.mean())


first = explorer.model_menu.value
trained = [index for index, choice in enumerate(choices) if choice.kind != "random"]
for index in (first, trained[0]):
    explorer.model_menu.value = index
    shown = explorer.result
    print(f"{explorer.model_label}: peak / mean over the keys: " + ", ".join(
        f"{name} {peakedness(getattr(shown, name)):.3f}" for name in ("long_range", "short_range", "dense")))
explorer.model_menu.value = first  # the explorer above shows the first model again: pick another in its menu

# %% [markdown]
# Two different models on two different tasks (the menu's first model, with the `MODEL` architecture, and a tiny
# R-18 fine-tuned on the toy sample), so only the size of the numbers is meaningful: the closer to 1, the flatter
# the map. A ratio near 1 for the random weights means their maps are close to uniform at this pixel: each panel's
# own colour scale stretches tiny differences, so do not read the random panels' bright spots as preferences. The
# explorer above is back on its first model; choose the sample-trained one in its menu and click around to see its
# maps.

# %% [markdown]
# ## Take it with you: a standalone page
#
# `explorer.save_html(path)` writes what the explorer shows for the current model into **one HTML file** that
# opens from disk in any browser — no kernel, no network — and answers clicks and arrow keys by itself. It can
# do that because ISA's attention is small: the file carries *all* of it, the $N'(Q_hQ_w + P_hP_w)$
# weights of the two steps (each softmax row stored as `uint8` steps of its maximum), and computes the composed
# map in the page. Dense attention's $N^2$ affinity would not fit, so the page stores its queries and keys
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
# ## Does a trained model attend to its own class? A measurement
#
# Attention pictures of trained models often *look* as if a pixel reads its own class. To make that a claim we
# need a number and a baseline. For a query $p$ of class $c$ and one of its maps $m$:
#
# $$\text{mass}(p) = \frac{\sum_{r:\,y_r = c} m[r]}{\sum_{r \text{ labelled}} m[r]}, \qquad
# \text{uniform}(p) = \frac{|\{r \in S_m(p): y_r = c\}|}{|S_m(p)|},$$
#
# where $S_m(p)$ is the set of keys the map *can* read (its group for $A_L$, its block for $A_S$, all pixels for
# the composed and dense maps). A map that spreads its weight evenly over its keys scores exactly the uniform
# baseline; **lift** = mass / uniform above 1 means the *weights* prefer the query's class. The short-range
# baseline is high on its own: neighbours tend to share a class. `isanet.analysis.same_class` computes both,
# averaged over many query pixels of the VOC sample's validation images (the data the sample-trained model
# learnt from), for the sample-trained model and for the same architecture with fresh random weights.

# %%
voc_root = sample_dataset("voc", ROOT, seed=0, quiet=True, **NOTEBOOK_SAMPLE_DATA)
voc_val = build_dataset("voc", voc_root, split="val")
count = SAME_CLASS_IMAGES or (2 if quick else len(voc_val))
voc_samples = [voc_val[i] for i in range(min(count, len(voc_val)))]
transform = TestTransform(NOTEBOOK_SETTINGS["val_scale"], IMAGENET_MEAN, IMAGENET_STD)

trained_model = load_model(sample_path).to(device)
torch.manual_seed(0)
random_model = ISANet(trained_model.config).to(device)  # the same architecture, freshly initialised
same_class = {}
for name, model in (("random weights", random_model), (f"sample-trained ({sample_iters} it)", trained_model)):
    measured = same_class[name] = same_class_over_images(model, voc_samples, transform, queries=SAME_CLASS_QUERIES)
    print(f"{name}: {measured.num_queries} query pixels over {len(voc_samples)} images (SYNTHETIC sample data), "
          f"queries per class {dict(sorted(measured.counts.items()))}")
    print(f"averaged over all queries:\n{measured.table()}\nclass-balanced (each class counts once):\n"
          f"{measured.table(balanced=True)}\n")

# %% [markdown]
# The tables are long; the next cell boils them down. For each model it prints the class-balanced lifts, how far
# the per-class lifts scatter and over how few queries per class, and a verdict computed from both (a map
# "prefers the own class" when its balanced lift is above 1.1 and every class's lift is above 1); then, for the
# sample-trained model, how well it segments these same images (mIoU by `SegMetrics`, from `predict_image` at the
# test scale used above). For the random weights it checks the claim that fresh weights have no preference:
# every lift within 10 % of 1.

# %%
def verdict(lifts: dict, scatter: dict) -> str:
    """The rule the prose reads: a map prefers the own class when its class-balanced lift is above 1.1 *and*
    every class's own lift is above 1; above 1.1 with some class at or below 1 is no consistent preference."""
    above = [name for name, lift in lifts.items() if lift > 1.1]
    consistent = [name for name in above if min(scatter[name]) > 1]
    mixed = [name for name in above if name not in consistent]
    parts = [f"prefers the own class (lift > 1.1, every class > 1) in: {', '.join(consistent)}"] if consistent else []
    if mixed:
        parts.append(f"lift > 1.1 but some class at or below 1, so no consistent preference, in: {', '.join(mixed)}")
    return "; ".join(parts) or "no map prefers the own class by more than 10 %"


for name, measured in same_class.items():
    lifts = {map_name: value.lift for map_name, value in measured.balanced().items()}
    per_class = measured.by_class()
    scatter = {map_name: [by_map[map_name].lift for by_map in per_class.values()] for map_name in lifts}
    print(f"{name}: class-balanced lift " + ", ".join(f"{k} x{v:.2f}" for k, v in lifts.items()))
    print("  per-class lifts range " + ", ".join(f"{k} {min(v):.2f}-{max(v):.2f}" for k, v in scatter.items())
          + f"; {min(measured.counts.values())} to {max(measured.counts.values())} queries per class")
    print(f"  -> {verdict(lifts, scatter)}")

deviation = max(abs(value.lift - 1) for value in same_class["random weights"].maps.values())
print(f"random weights: largest |lift - 1| over the maps (all queries) = {deviation:.3f}")
assert deviation < 0.1, "freshly initialised weights should not prefer any class (lift within 10 % of 1)"

segmentation = SegMetrics(voc_val.num_classes)
for voc_sample in voc_samples:
    scores = predict_image(trained_model, voc_sample["image"], transform.scale, IMAGENET_MEAN, IMAGENET_STD)
    segmentation.update(scores.argmax(dim=0).cpu(), voc_sample["label"])
print(f"sample-trained ({sample_iters} it): mIoU {segmentation.compute()['mIoU']:.2f} on the same "
      f"{len(voc_samples)} SYNTHETIC images")
if quick:
    print(f"QUICK run: a {sample_iters}-iteration model on {len(voc_samples)} images, {SAME_CLASS_QUERIES or 'all'} "
          "queries per image — these numbers say nothing; run with QUICK = False.")

# %% [markdown]
# **Reading it.** The random-weights lines are the control: fresh softmax weights are close to uniform and know
# nothing of classes, so every lift is close to 1 (the cell checks it), and the "on own class" column only says
# where a map can look (the short-range map scores high because a block mostly holds one class).
#
# For the sample-trained model, the "->" line is the conclusion, computed from the two lines above it:
#
# * a map whose class-balanced lift is above 1.1 **and** whose per-class lifts all stay above 1 prefers the
#   query's own class; a balanced lift above 1.1 while the per-class lifts straddle 1, over the few queries per
#   class the range line prints, is no consistent preference: one or two classes pull the average up;
# * lifts at or below 1 say the attention does **not** prefer the own class. If the printed mIoU is high at
#   the same time, the model segments the sample well without it: on this toy task the convolutions and the
#   classifier do the work, and a bright same-class region in one picture would be a coincidence, not a rule.
#
# In quick mode the model has had only a few iterations, so the lines show the measurement runs, nothing more;
# run with `QUICK = False` (more iterations, all validation images) before drawing a conclusion. Whether a
# published model's attention prefers its class is the same measurement on real data: point `CHECKPOINT` at one
# and give `same_class_over_images` real labelled `{"image", "label"}` samples.

# %% [markdown]
# ## Summary
#
# * A pixel's ISA attention is two sparse rows: $A_L$ over its long-range group ($Q_hQ_w$ keys, one per block)
#   and $A_S$ over its block ($P_hP_w$ keys); `down_factor` is $P$ = (`loc_h`, `loc_w`), $Q$ = (`glb_h`, `glb_w`).
# * Their product $A_S A_L$ has no zero: two hops reach every pixel. It composes the softmax weights only, so it
#   approximates influence (rollout); projections and conv-BN-ReLU in between are left out.
# * The dense panel is a what-if with the ISA model's own step-1 projections, not a dense-trained model.
# * "Attends to its own class" is a measurable claim: mass on the class against the uniform share of the keys.

# %% [markdown]
# ## Exercises
#
# Four exercises, easy to hard. Each is followed by its worked solution, collapsed: click the bar on the
# left of the cell (or the three dots) to open it.

# %% [markdown]
# 1. **(easy)** For the explorer's feature map, compute by hand the padding, $Q$ and the number of keys a pixel
#    reads in each step and in dense attention; check with `Partition`.

# %% jupyter={"source_hidden": true} tags=["solution"]
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

# %% jupyter={"source_hidden": true} tags=["solution"]
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
# 3. **(medium)** Which map of the sample-trained model prefers its class most *relative to its baseline*
#    (class-balanced), and which puts the most raw mass on it? Why can those differ?

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution 3: largest lift vs largest raw mass
measured = same_class[f"sample-trained ({sample_iters} it)"].balanced()
by_lift = max(measured, key=lambda name: measured[name].lift)
by_mass = max(measured, key=lambda name: measured[name].mass)
print(f"largest lift: {by_lift} (x{measured[by_lift].lift:.2f}); largest raw mass: {by_mass} "
      f"({measured[by_mass].mass:.2f})")
print("they can differ because the raw mass also counts where a map is allowed to look: a block is mostly one "
      "class, so the short-range map scores high raw mass even with uniform weights")

# %% [markdown]
# 4. **(hard)** Measure the same-class mass of a different "dense what-if": the model's step-2 projections
#    (`local_relation`) applied to all pixels (`dense_block=` argument). Does it prefer the class more or less
#    than the step-1 what-if?

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution 4: the step-2 projections as the dense what-if
local_what_if = same_class_over_images(trained_model, voc_samples, transform, queries=SAME_CLASS_QUERIES,
                                       dense_block=trained_model.decode_head.local_relation)
step1 = same_class[f"sample-trained ({sample_iters} it)"].balanced()["dense"]
step2 = local_what_if.balanced()["dense"]
print(f"dense what-if, class-balanced lift: step-1 projections x{step1.lift:.2f}, step-2 projections "
      f"x{step2.lift:.2f}")

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
