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
# # 01 · Interlaced partitions: how ISA cuts a feature map
#
# **Goal:** see exactly which pixels attend to which in Interlaced Sparse Self-Attention (ISA), and why that
# is enough for every pixel to reach every other one.
#
# Dense self-attention lets each of the `h·w` pixels of a feature map look at all `h·w` pixels: an affinity
# matrix of `(hw)²` entries. ISA replaces it with two cheap steps, using a `down_factor = (loc_h, loc_w)`
# (8 x 8 in every published model):
#
# 1. **long range** — the pixels with the same position inside their `loc_h x loc_w` block form a group spread
#    over the whole map (stride `loc`); attention runs inside each group;
# 2. **short range** — the pixels of one block form a group; attention runs inside each block.
#
# You will draw both groupings on a grid and over an image, see the padding a non-divisible map gets, follow
# the two-hop path between any two pixels, and compare the affinity sizes with the formulas
# (`Partition.affinity_entries`). Nothing here needs a model; it runs in seconds.

# %% tags=["parameters"]
# Parameters — change them and re-run. Relative paths are taken from the repository root.
HEIGHT, WIDTH = 13, 18     # a small feature map that 4 x 4 blocks do not divide: it gets padded
DOWN_FACTOR = 4            # (loc_h, loc_w) = (DOWN_FACTOR, DOWN_FACTOR) for the small grid
SOURCE = (1, 2)            # two pixels of the small map for the two-hop path (row, col)
TARGET = (9, 13)          # try (11, 16): its via pixel lies in the padding
DATA_ROOT = None           # a Cityscapes root (e.g. "data/cityscapes") for the picture; None: synthetic sample
DATASET = "cityscapes"     # how to read DATA_ROOT: "cityscapes", "ade20k" or "voc"
IMAGE_WIDTH = 512          # the picture's width; its feature map is 1/8 of it (the D8 backbone's stride)
IMAGE_DOWN_FACTOR = 8      # the published down_factor, for the picture

# %% [markdown]
# ## Set-up

# %%
# %matplotlib inline
import numpy as np
from IPython.display import HTML, display
from matplotlib.figure import Figure

from isanet.data.datasets import build_dataset
from isanet.data.transforms import rescale_size, resize_image
from isanet.models.interlaced import (
    Partition,
    long_range_group_ids,
    pixel_groups,
    short_range_group_ids,
)
from isanet.notebook.partition_explorer import PartitionExplorer
from isanet.notebook.partition_plots import (
    complexity_html,
    plot_partition,
    plot_partition_over_image,
    plot_two_hop,
    two_hop_path,
)
from isanet.notebook.session import repo_root, resolve_path, sample_dataset

ROOT = repo_root()
partition = Partition(HEIGHT, WIDTH, DOWN_FACTOR, DOWN_FACTOR)
print(partition)

# %% [markdown]
# ## 1. Blocks, groups and padding
#
# `Partition` holds the geometry. The map is cut into `glb_h x glb_w` blocks of `loc_h x loc_w` pixels, after
# padding it up to a multiple of the block size. The padding is symmetric, the odd extra row/column going to
# the bottom/right (mmsegmentation's rule).

# %%
p = partition
print(f"map {p.height}x{p.width}, down_factor ({p.loc_h}, {p.loc_w})")
print(f"blocks: glb_h = ceil({p.height}/{p.loc_h}) = {p.glb_h}, glb_w = ceil({p.width}/{p.loc_w}) = {p.glb_w}")
print(f"padded to {p.padded_h}x{p.padded_w}; padding (left, right, top, bottom) = {p.padding}")
print(f"{p.num_long_range_groups} long-range groups of {p.glb_h * p.glb_w} pixels, "
      f"{p.num_short_range_groups} short-range blocks of {p.loc_h * p.loc_w} pixels")

# %% [markdown]
# Every position of the padded map has a **long-range group id** (its offset inside its block) and a
# **short-range group id** (its block). Print them for the padded grid: the long-range ids repeat with period
# `loc`, the short-range ids are constant on blocks. (Each id is also the position's index *inside* the other
# grouping — that is what makes the permutations between the two steps so simple.)

# %%
print("long-range group id of each padded position:")
print(long_range_group_ids(p).numpy())
print("\nshort-range group (block) id of each padded position:")
print(short_range_group_ids(p).numpy())

# %% [markdown]
# The same as pictures. Left: all long-range groups, one colour each — a group is a lattice with stride
# `loc` over the whole map. Right: the short-range blocks. The dashed box is the real (unpadded) map; the
# star is `SOURCE`, and only its own groups are coloured.

# %%
display(plot_partition(p, SOURCE))
long_members, short_members = pixel_groups(p, *SOURCE)
print(f"SOURCE {SOURCE} attends to {len(long_members)} pixels in step 1 and {len(short_members)} in step 2 "
      f"(instead of {p.height * p.width} with dense attention); padded coordinates of its long-range group:")
print(long_members.tolist())

# %% [markdown]
# ## 2. The two-hop path
#
# After the two steps, how does information from `SOURCE` reach `TARGET`? In step 1 a pixel reads from its
# long-range group; in step 2 `TARGET` reads from its block. So the message travels
# `SOURCE → via → TARGET`, where `via` is the pixel of `TARGET`'s block that has `SOURCE`'s in-block offset:
# it is in `SOURCE`'s long-range group *and* in `TARGET`'s block.

# %%
source, via, target = two_hop_path(p, SOURCE, TARGET)
print(f"padded coordinates: source {source} -> via {via} (step 1, long range) -> target {target} "
      f"(step 2, short range)")
figure = Figure(figsize=(5, 5.2), layout="constrained")
plot_two_hop(p, SOURCE, TARGET, ax=figure.subplots())
display(figure)

# %% [markdown]
# This works for **every** pair, which we can check by brute force: for all `(source, target)` pairs, `via` is
# in `source`'s long-range group and in `target`'s block.

# %%
long_ids, short_ids = long_range_group_ids(p).numpy(), short_range_group_ids(p).numpy()
pairs = 0
for sr in range(p.height):
    for sc in range(p.width):
        for tr in range(p.height):
            for tc in range(p.width):
                (sy, sx), (vy, vx), (ty, tx) = two_hop_path(p, (sr, sc), (tr, tc))
                assert long_ids[vy, vx] == long_ids[sy, sx] and short_ids[vy, vx] == short_ids[ty, tx]
                pairs += 1
print(f"all {pairs:,} ordered pairs of the {p.height}x{p.width} map are connected in exactly two hops")

# %% [markdown]
# One subtlety: `via` may be a **padding** position (try `TARGET = (11, 16)`). That still works, because padded
# positions are real members of the groups: the map is padded with zeros *before* attention, so a padded
# position takes part in step 1 like any pixel (it reads its long-range group) and passes the result on in
# step 2. How often does the path go through the padding on this map?

# %%
padded_via = 0
for sr in range(p.height):
    for sc in range(p.width):
        for tr in range(p.height):
            for tc in range(p.width):
                _, (vy, vx), _ = two_hop_path(p, (sr, sc), (tr, tc))
                inside = p.pad_top <= vy < p.pad_top + p.height and p.pad_left <= vx < p.pad_left + p.width
                padded_via += not inside
print(f"{padded_via:,} of {pairs:,} paths ({padded_via / pairs:.0%}) pass through a padding position; "
      f"on a map that down_factor divides there is no padding and no such path")

# %% [markdown]
# ## 3. Over a real picture
#
# In ISANet the map is the backbone's output, 1/8 of the image in each direction, and `down_factor` is 8: a
# block is 8 x 8 feature pixels = 64 x 64 image pixels. Below, the white lines are the blocks, orange is the
# chosen pixel's block (what it sees in step 2) and blue its long-range group (what it sees in step 1).

# %%
data_root = resolve_path(DATA_ROOT, ROOT)
if data_root is None:
    data_root = sample_dataset(DATASET, ROOT, num_train=1, num_val=2, size=IMAGE_WIDTH)
sample = build_dataset(DATASET, data_root, split="val")[0]
image = resize_image(sample["image"], rescale_size(*sample["image"].shape[:2], (IMAGE_WIDTH, IMAGE_WIDTH)))
feature_size = (-(-image.shape[0] // 8), -(-image.shape[1] // 8))   # the D8 backbone's output size
image_partition = Partition(*feature_size, IMAGE_DOWN_FACTOR, IMAGE_DOWN_FACTOR)
query = (feature_size[0] // 3, feature_size[1] // 3)
print(f"image {image.shape[0]}x{image.shape[1]} -> feature map {feature_size[0]}x{feature_size[1]}, "
      f"{image_partition.glb_h}x{image_partition.glb_w} blocks; query feature pixel {query}")
display(plot_partition_over_image(image, image_partition, query, stride=8))

# %% [markdown]
# ## 4. What it saves: the formulas, filled in
#
# Dense attention stores `(hw)²` affinities per image. ISA stores, for the padded map of `HW` pixels,
# `HW·glb_h·glb_w` (step 1: `loc_h·loc_w` groups of `glb_h·glb_w` pixels, each a `(glb_h·glb_w)²` matrix)
# plus `HW·loc_h·loc_w` (step 2) entries: `HW·(glb_h·glb_w + loc_h·loc_w)`.

# %%
display(HTML(complexity_html(image_partition)))

# %% [markdown]
# How the two grow with the map size (a square `n x n` map, `down_factor` 8), and, for the paper's 128 x 128
# map, which `down_factor` makes ISA cheapest: `glb·glb + loc·loc` is smallest when the two group sizes are
# equal, `loc ≈ (hw)^(1/4)` — about 11 for 128 x 128, and 8 is close.

# %%
sides = np.arange(8, 257, 8)
dense_entries = [Partition(n, n, 8, 8).affinity_entries()[0] for n in sides]
isa_entries = [Partition(n, n, 8, 8).affinity_entries()[1] for n in sides]
factors = np.arange(1, 33)
by_factor = [Partition(128, 128, f, f).affinity_entries()[1] for f in factors]

figure = Figure(figsize=(11, 4), layout="constrained")
ax_size, ax_factor = figure.subplots(1, 2)
ax_size.loglog(sides, np.array(dense_entries) * 4 / 2**20, "o--", label="dense: (hw)²")
ax_size.loglog(sides, np.array(isa_entries) * 4 / 2**20, "o-", label="ISA: HW·(glb_h·glb_w + loc_h·loc_w)")
ax_size.set_xlabel("feature map side n (n x n)")
ax_size.set_ylabel("affinity memory, float32 (MiB)")
ax_size.set_title("affinity memory vs map size (down_factor 8)")
ax_size.grid(True, which="both", alpha=0.3)
ax_size.legend()
ax_factor.semilogy(factors, np.array(by_factor) * 4 / 2**20, "o-")
ax_factor.axvline(8, color="tab:orange", ls="--", label="published down_factor 8")
ax_factor.axhline(Partition(128, 128).affinity_entries()[0] * 4 / 2**20, color="gray", ls=":", label="dense")
ax_factor.set_xlabel("down_factor (loc_h = loc_w)")
ax_factor.set_ylabel("ISA affinity memory (MiB)")
ax_factor.set_title("128 x 128 map: ISA cost vs down_factor")
ax_factor.grid(True, which="both", alpha=0.3)
ax_factor.legend()
display(figure)
best = int(factors[int(np.argmin(by_factor))])
dense128, isa128 = Partition(128, 128).affinity_entries()
print(f"128x128: dense {dense128 * 4 / 2**20:,.0f} MiB vs ISA {isa128 * 4 / 2**20:,.1f} MiB of affinities "
      f"({dense128 / isa128:.0f}x less); cheapest down_factor {best}")

# %% [markdown]
# ## 5. Try it: sliders
#
# Move the sliders to change the map size, `down_factor` and the two pixels. Watch the padding (dashed box) when
# `down_factor` does not divide the size, the two groups of the source, the two-hop path, and the numbers in the
# table. (Run the notebook in JupyterLab to use them; a headless run only draws the first state.)

# %%
explorer = PartitionExplorer(HEIGHT, WIDTH, DOWN_FACTOR, source=SOURCE, target=TARGET)
explorer.widget

# %% [markdown]
# **Next:** notebook 02 shows the attention weights a real model puts on these groups, for any pixel you click.
