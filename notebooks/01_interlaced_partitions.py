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
# **Goal:** see exactly which pixels attend to which in Interlaced Sparse Self-Attention (ISA), prove with one
# matrix product that two sparse steps let every pixel reach every other, and see why that still is not dense
# attention.
#
# **You will learn**
# - how a `down_factor = (loc_h, loc_w)` cuts a map into blocks and long-range groups, and how odd sizes are
#   padded;
# - the tensor shapes of one ISA forward pass: pad → group → attend → regroup → attend → ungroup → crop, step by
#   step next to mmsegmentation's operations;
# - the **matrix view**: the two steps as sparse $HW \times HW$ relations that become block diagonal when the
#   positions are reordered, and whose product has no zero;
# - why two hops reach everything yet are *not* equivalent to dense attention: the pixels of one block share
#   the same long-range rows;
# - what ISA saves in affinity entries, and which `down_factor` is cheapest.
#
# - to write ISA yourself in twenty lines (pad → `pixel_unshuffle` → attend → regroup → attend → crop) and check
#   it against the package's module, number for number;
# - what the weights-only rollout $A_SA_L$ is and is not: the measured influence of the real module beside it.
#
# **Prerequisites:** scaled dot-product attention ($\mathrm{softmax}(QK^\top/\sqrt{d})V$); matrix products;
# PyTorch's `view`/`permute`. Nothing here needs a model or a GPU; it runs in seconds.
#
# **Notation:** every letter used in notebooks 01–07 is on one card, [notation.md](notation.md).

# %% [markdown]
# ## The idea, and the paper's notation
#
# Dense self-attention lets each of the $N = hw$ pixels of a feature map read all $N$ pixels:
#
# $$\mathrm{Attn}(X) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d}}\right)V, \qquad
#   A = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d}}\right) \in \mathbb{R}^{N \times N},$$
#
# with queries and keys of width $d$ (`isa_channels`) and values of $C$ channels — an affinity $A$ of $N^2$
# entries. ISA (Huang et al., arXiv:1907.12273) factorises it into two sparse affinities computed one after the
# other. The paper's names and the code's:
#
# | paper | code | meaning |
# | --- | --- | --- |
# | $H \times W$ | `padded_h x padded_w` | the map, padded to a multiple of the block size |
# | $P_h \times P_w$ | `down_factor = (loc_h, loc_w)` | block size (8 x 8 in every published model) |
# | $Q_h \times Q_w$ | `(glb_h, glb_w)` | number of blocks, $\lceil h / P_h \rceil \times \lceil w / P_w \rceil$ |
# | $A_L$ | `global_relation`, `long_range` | step 1: attention inside each long-range group |
# | $A_S$ | `local_relation`, `short_range` | step 2: attention inside each block |
#
# (The paper's $Q_h, Q_w$ are block counts, not the queries $Q$ above; the clash of letters is the paper's.)
#
# 1. **long range** — the $P_hP_w$ groups of pixels with the same position inside their block: $Q_hQ_w$ pixels
#    spread over the whole map with stride $P$;
# 2. **short range** — the $Q_hQ_w$ blocks of $P_hP_w$ neighbours.
#
# The output of step 2 at pixel $p$ mixes step-1 outputs, which mix the input, so multiplying the two steps'
# attention weights gives the **rollout**
#
# $$\mathrm{composed}[p, r] = \sum_q A_S[p, q]\, A_L[q, r], \qquad \mathrm{composed} = A_S A_L .$$
#
# The rollout is a statement about the *weights* only: how the two softmaxes route the values. It is not how much
# pixel $r$ moves the module's output at $p$ — the weights themselves depend on the input, and each step ends in
# a conv-BN-ReLU projection. Section 5 measures that influence and sets it beside the rollout.

# %% tags=["parameters"]
# Parameters — change them and re-run. Relative paths are taken from the repository root.
HEIGHT, WIDTH = 13, 18     # a small feature map that 4 x 4 blocks do not divide: it gets padded
DOWN_FACTOR = 4            # (loc_h, loc_w) = (DOWN_FACTOR, DOWN_FACTOR) for the small grid
SOURCE = (1, 2)            # two pixels of the small map for the two-hop path (row, col)
TARGET = (9, 13)           # try (11, 16): its via pixel lies in the padding
MATRIX_SIZE = (6, 6)       # the map whose HW x HW matrices are drawn (keep it small: 36 x 36 entries)
MATRIX_DOWN_FACTOR = 3     # its down_factor
IMAGE_FILE = None          # any picture file (e.g. "my_photo.jpg") to draw the blocks over; None: see DATA_ROOT
DATA_ROOT = None           # a data set root (e.g. "data/cityscapes"); None with no IMAGE_FILE: a synthetic sample
DATASET = "cityscapes"     # how to read DATA_ROOT: "cityscapes", "ade20k" or "voc"
IMAGE_WIDTH = 512          # the picture's width; its feature map is 1/8 of it (the D8 backbone's stride)
IMAGE_DOWN_FACTOR = 8      # the published down_factor, for the picture

# %% [markdown]
# ## Set-up

# %%
# %matplotlib inline
import inspect

import numpy as np
import torch
from IPython.display import HTML, Code, display
from matplotlib.figure import Figure

from isanet.analysis.influence import influence_vs_rollout
from isanet.analysis.isa_matrices import attention_matrices, long_range_mask, pixel_groups, short_range_mask
from isanet.analysis.reach import reach
from isanet.data.datasets import read_image
from isanet.data.registry import build_dataset
from isanet.data.sample_checkpoint import random_state_dict
from isanet.data.transforms import rescale_size, resize_image
from isanet.models.efficient.base import DenseAttention, compose
from isanet.models.efficient.isa_module import ISAModule
from isanet.models.isa import Partition, long_range_group_ids, short_range_group_ids
from isanet.notebook.isa_exercise import steps_report
from isanet.notebook.partition_explorer import PartitionExplorer
from isanet.notebook.partition_plots import (
    complexity_html,
    isa_shape_steps,
    plot_partition,
    plot_partition_over_image,
    plot_regrouping,
    plot_relation_masks,
    plot_two_hop,
    plot_two_hop_product,
    regrouped_indices,
    two_hop_path,
)
from isanet.notebook.quiz import check_guess
from isanet.notebook.session import repo_root, resolve_path, sample_dataset

ROOT = repo_root()
partition = Partition(HEIGHT, WIDTH, DOWN_FACTOR, DOWN_FACTOR)
print(partition)

# %% [markdown]
# ## 0. Why not blocks alone, or stride alone?
#
# Two cheap ways to cut dense attention come to mind first: let each pixel read only its **block** (its
# $P \times P$ neighbours), or only its **lattice** (the pixels at stride $P$ from it, one per block). Either is
# one sparse pattern $\mathcal{P}$; stacking two layers of it reaches what the boolean product
# $\mathcal{P}\mathcal{P}$ reaches (`isanet.analysis.reach` composes patterns the same way for every method).
#
# **Predict:** on a 12 x 12 map with 4 x 4 blocks, what fraction of the map does a pixel reach after **two**
# layers of blocks alone? Set `guess_blocks` (a number from 0 to 1), then run the next cell.

# %%
guess_blocks = None  # your guess: the fraction of the 12 x 12 map reached after two block-only layers

# %%
opener = Partition(12, 12, 4, 4)  # 4 divides 12: no padding, so the masks are over the real map
blocks_only, lattice_only = short_range_mask(opener), long_range_mask(opener)
reached = {"blocks alone": compose([blocks_only, blocks_only]), "stride alone": compose([lattice_only, lattice_only]),
           "ISA (lattice, then block)": reach("isa", 12, 12, size=4, layers=1)}
for label, pattern in reached.items():
    print(f"{label:<26} reaches {pattern.float().mean().item():.1%} of the map after two hops "
          f"(worst pixel {pattern.sum(1).min().item()} of {pattern.shape[1]} pixels)")
print(check_guess(guess_blocks, round(reached["blocks alone"].float().mean().item(), 4),
                  "a block is closed: reading your block twice reads the same 16 pixels again. The lattice is closed "
                  "too (the pixels at stride 4 of a lattice pixel are the same lattice). Only alternating them leaves "
                  "each group: the lattice carries the message to the right block, the block carries it to the pixel."))

# %% [markdown]
# Each pattern alone is a **closed** set: repeating it adds nothing, however many layers are stacked (the first
# two lines: 16 of 144 pixels, one block, and 9 of 144, one lattice of a 12 x 12 map at stride 4). Put one after
# the other, they reach the whole map in two hops (the last line). That is ISA, and the rest of this notebook
# takes it apart.
#
# ## 1. Blocks, groups and padding
#
# `Partition` holds the geometry. The map is padded up to a multiple of the block size, then cut into
# $Q_h \times Q_w$ = `glb_h x glb_w` blocks of $P_h \times P_w$ = `loc_h x loc_w` pixels. The padding is
# symmetric, the odd extra row/column going to the bottom/right (mmsegmentation's rule).

# %%
p = partition
print(f"map {p.height}x{p.width}, down_factor ({p.loc_h}, {p.loc_w})")
print(f"blocks: glb_h = ceil({p.height}/{p.loc_h}) = {p.glb_h}, glb_w = ceil({p.width}/{p.loc_w}) = {p.glb_w}")
print(f"padded to {p.padded_h}x{p.padded_w}; padding (left, right, top, bottom) = {p.padding}")
print(f"{p.num_long_range_groups} long-range groups of {p.glb_h * p.glb_w} pixels, "
      f"{p.num_short_range_groups} short-range blocks of {p.loc_h * p.loc_w} pixels")
left, right, top, bottom = p.padding
print(f"in words: the {p.height} rows need {p.glb_h} blocks of {p.loc_h} ({p.padded_h} rows), so "
      f"{top + bottom} rows of padding, {top} on top and {bottom} at the bottom; the {p.width} columns need "
      f"{p.glb_w} blocks ({p.padded_w} columns), so {left + right} columns of padding, {left} on the left and "
      f"{right} on the right")

# %% [markdown]
# The last line spells out the padding of this map: each side gets half of it, and an odd row or column goes to
# the bottom or right. Every position of the padded map has a
# **long-range group id** (its offset inside its block) and a **short-range group id** (its block). Printed for the
# padded grid, the long-range ids repeat with period `loc` and the short-range ids are constant on blocks. (Each id is
# also the position's index *inside* the other grouping — that is what makes the permutations between the steps
# simple.)

# %%
print("long-range group id of each padded position:")
print(long_range_group_ids(p).numpy())
print("\nshort-range group (block) id of each padded position:")
print(short_range_group_ids(p).numpy())

# %% [markdown]
# The same as pictures. Left: the long-range groups; right: the short-range blocks. The dashed box is the real
# (unpadded) map; the star is `SOURCE`, and only its own groups are coloured.

# %%
display(plot_partition(p, SOURCE))
long_members, short_members = pixel_groups(p, *SOURCE)


def real_count(members: torch.Tensor) -> int:
    """How many padded (row, col) coordinates of ``members`` lie on the real (unpadded) map."""
    rows, cols = members[:, 0] - p.pad_top, members[:, 1] - p.pad_left
    return int(((rows >= 0) & (rows < p.height) & (cols >= 0) & (cols < p.width)).sum())


both = torch.cat([long_members, short_members]).unique(dim=0)  # SOURCE is in both groups: count it once
print(f"SOURCE {SOURCE} reads {len(long_members)} positions of the padded map in step 1 "
      f"({real_count(long_members)} real pixels, {len(long_members) - real_count(long_members)} padding) and "
      f"{len(short_members)} in step 2 ({real_count(short_members)} real, "
      f"{len(short_members) - real_count(short_members)} padding)")
print(f"together {len(both)} distinct positions (SOURCE itself is in both), {real_count(both)} of them real "
      f"pixels, where dense attention reads all {p.height * p.width} real pixels")
print("padded coordinates of its long-range group:", long_members.tolist())

# %% [markdown]
# **The figure's code.** This picture is the lesson of the section, so here is the code that draws it (collapsed:
# unfold the cell): `plot_partition` colours each padded position by whether it shares the source's in-block offset (its long-range group) or its block, greys the padding and draws the block grid.

# %% jupyter={"outputs_hidden": true, "source_hidden": true}
display(Code(inspect.getsource(plot_partition), language="python"))

# %% [markdown]
# The source's long-range group is a lattice with stride `loc` in both directions, one position per block
# ($Q_hQ_w$ positions); its block holds $P_hP_w$ = `loc_h·loc_w` neighbours. These are positions of the *padded*
# map: near the border some of them are padding, which is why the cell counts real pixels and padding
# separately, and the source belongs to both groups, so the union counts it once. Even together, they are a small
# fraction of what dense attention reads (the line before the last).
#
# ## 2. One forward pass, shape by shape
#
# ISA is only reshapes around an ordinary attention block. mmsegmentation's `ISAHead.forward`
# (`mmseg/models/decode_heads/isa_head.py`, v1.x) moves the pixels with one `view`, one `permute` and one
# `reshape` per step; here are the shapes each of its steps produces (the printed steps below follow the
# table's order, after the input):
#
# | step | mmseg's operation | shape after it |
# | --- | --- | --- |
# | 1 pad | `F.pad`, half the missing rows/columns on each side, the odd one bottom/right | `n, c, H, W` |
# | 2 group | `view` as `n, c, glb_h, loc_h, glb_w, loc_w`; `permute` to `n, loc_h, loc_w, c, glb_h, glb_w`; `reshape` | `n·loc_h·loc_w, c, glb_h, glb_w` |
# | 3 attend | `global_relation` | unchanged |
# | 4 regroup | `view` as `n, loc_h, loc_w, c, glb_h, glb_w`; `permute` to `n, glb_h, glb_w, c, loc_h, loc_w`; `reshape` | `n·glb_h·glb_w, c, loc_h, loc_w` |
# | 5 attend | `local_relation` | unchanged |
# | 6 ungroup | `view` as `n, glb_h, glb_w, c, loc_h, loc_w`; `permute` to `n, c, glb_h, loc_h, glb_w, loc_w`; `reshape` | `n, c, H, W` |
# | 7 crop | slice off the padding | `n, c, h, w` |
#
# The package does the same in `isanet.models.isa` (`group_long_range`, `long_to_short_range`,
# `ungroup_short_range`; its parity test compares it with mmseg's output). The cell runs those functions on a
# `meta` tensor (shapes only) of this notebook's map, with 512 channels, and prints the shape after each step.
# The batch dimension is where the groups go: attention runs on each group as if it were a separate image.

# %%
names = {"input": "n x c x h x w", "pad": "n x c x H x W",
         "group (long range)": "(n·loc_h·loc_w) x c x glb_h x glb_w",
         "attend in each group": "(n·loc_h·loc_w) x c x glb_h x glb_w",
         "regroup (short range)": "(n·glb_h·glb_w) x c x loc_h x loc_w",
         "attend in each block": "(n·glb_h·glb_w) x c x loc_h x loc_w", "ungroup": "n x c x H x W",
         "crop": "n x c x h x w"}
for index, (step, shape) in enumerate(isa_shape_steps(p, batch=1, channels=512)):
    arrow = "   " if index == 0 else "-> "
    print(f"{arrow}{step:<22} {' x '.join(map(str, shape)):<18} {names[step]}")
print(f"\nthe batch column: 1 image becomes {p.num_long_range_groups} 'images' of {p.glb_h} x {p.glb_w} pixels "
      f"(one per long-range group: P_hP_w = {p.num_long_range_groups} groups of Q_hQ_w = "
      f"{p.num_short_range_groups} positions), then {p.num_short_range_groups} 'images' of {p.loc_h} x {p.loc_w} "
      "(one per block), then 1 image again")

# %% [markdown]
# Read the batch column, as the last line does: the image becomes $P_hP_w$ "images" of $Q_h \times Q_w$ positions
# (one per long-range group), then $Q_hQ_w$ "images" of $P_h \times P_w$ (one per block), then one image again.
# Attention never sees a position outside its "image", which is why each step is sparse.
#
# ## 2b. Write ISA yourself
#
# Now write the whole operation, for square blocks of side $P$, in plain PyTorch. The two attentions are lent by
# the package (`module.global_relation` and `module.local_relation`, two `SelfAttentionBlock`s that attend over a
# whole `n x c x h x w` input); what makes them *interlaced* is the regrouping around them, and that is yours:
#
# 1. **pad** to $H \times W$, multiples of $P$, half of the missing rows/columns on each side (the odd one
#    bottom/right);
# 2. **regroup for long range** (`to_groups`): the map subsampled at stride $P$ with offset $(i, j)$ is one
#    long-range group, and `F.pixel_unshuffle(x, P)` makes exactly those $P^2$ subsampled maps (as channels); move
#    them into the batch dimension, offset by offset: $(nP^2) \times c \times H/P \times W/P$;
# 3. *(attend with `global_relation`)*;
# 4. **regroup back** (`from_groups`, then `F.pixel_shuffle`), and **cut into blocks** (`to_blocks`): the
#    $P \times P$ blocks into the batch, row by row: $(n \cdot H/P \cdot W/P) \times c \times P \times P$;
# 5. *(attend with `local_relation`)*;
# 6. put the blocks back in place (`from_blocks`) and **crop** the padding (`crop`).
#
# Fill in the six functions below (each `return None` is a blank; a shape comment on every reshape helps). The
# cell after them checks each step on its own, on a 13 x 18 map with 4 x 4 blocks, against the package's
# regroupings, and says which step to fix first.

# %%
def pad(x: torch.Tensor, down: int) -> torch.Tensor:
    return None  # n x c x h x w -> n x c x H x W: torch.nn.functional.pad(x, (left, right, top, bottom))


def to_groups(padded: torch.Tensor, down: int) -> torch.Tensor:
    return None  # n x c x H x W -> (n*P*P) x c x H/P x W/P: pixel_unshuffle, then offsets into the batch


def from_groups(groups: torch.Tensor, n: int, down: int) -> torch.Tensor:
    return None  # (n*P*P) x c x H/P x W/P -> n x c x H x W: the inverse of to_groups (pixel_shuffle)


def to_blocks(padded: torch.Tensor, down: int) -> torch.Tensor:
    return None  # n x c x H x W -> (n*H/P*W/P) x c x P x P: reshape into blocks, then permute them into the batch


def from_blocks(blocks: torch.Tensor, n: int, glb_h: int, glb_w: int) -> torch.Tensor:
    return None  # (n*glb_h*glb_w) x c x P x P -> n x c x H x W: the inverse of to_blocks


def crop(padded: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return None  # n x c x H x W -> n x c x height x width: the centre, as pad put it


# %%
your_steps = {"pad": pad, "to_groups": to_groups, "from_groups": from_groups, "to_blocks": to_blocks,
              "from_blocks": from_blocks, "crop": crop}
print(steps_report(your_steps))

# %% [markdown]
# Under the notebook's test runner the blanks stay blank, so the report above says "not written yet" six times.
# The answer is the collapsed cell below (unfold it only after trying): the six steps, and `isa_from_scratch`,
# which puts them together with the two attentions. The cell after it checks the answer's steps the same way.

# %% jupyter={"source_hidden": true} tags=["from-scratch"]
def pad(x: torch.Tensor, down: int) -> torch.Tensor:
    h, w = x.shape[2:]
    pad_h, pad_w = -(-h // down) * down - h, -(-w // down) * down - w  # up to multiples of P: ceil(h / P) * P - h
    return torch.nn.functional.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


def to_groups(padded: torch.Tensor, down: int) -> torch.Tensor:
    n, c, big_h, big_w = padded.shape
    # channel c*P*P + i*P + j of pixel_unshuffle is channel c at offset (i, j) of every block
    lattice = torch.nn.functional.pixel_unshuffle(padded, down)  # n x (c*P*P) x H/P x W/P
    # -> n x c x P*P x H/P x W/P -> n x P*P x c x H/P x W/P -> (n*P*P) x c x H/P x W/P
    return lattice.reshape(n, c, down * down, big_h // down, big_w // down).transpose(1, 2).reshape(
        -1, c, big_h // down, big_w // down)


def from_groups(groups: torch.Tensor, n: int, down: int) -> torch.Tensor:
    c, glb_h, glb_w = groups.shape[1:]
    # (n*P*P) x c x glb_h x glb_w -> n x P*P x c x glb_h x glb_w -> n x (c*P*P) x glb_h x glb_w
    lattice = groups.reshape(n, down * down, c, glb_h, glb_w).transpose(1, 2).reshape(n, -1, glb_h, glb_w)
    return torch.nn.functional.pixel_shuffle(lattice, down)  # n x c x H x W, every pixel back in place


def to_blocks(padded: torch.Tensor, down: int) -> torch.Tensor:
    n, c, big_h, big_w = padded.shape
    # n x c x glb_h x P x glb_w x P -> n x glb_h x glb_w x c x P x P -> (n*glb_h*glb_w) x c x P x P
    return padded.reshape(n, c, big_h // down, down, big_w // down, down).permute(0, 2, 4, 1, 3, 5).reshape(
        -1, c, down, down)


def from_blocks(blocks: torch.Tensor, n: int, glb_h: int, glb_w: int) -> torch.Tensor:
    c, down = blocks.shape[1], blocks.shape[2]
    # -> n x glb_h x glb_w x c x P x P -> n x c x glb_h x P x glb_w x P -> n x c x H x W
    return blocks.reshape(n, glb_h, glb_w, c, down, down).permute(0, 3, 1, 4, 2, 5).reshape(
        n, c, glb_h * down, glb_w * down)


def crop(padded: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top, left = (padded.shape[2] - height) // 2, (padded.shape[3] - width) // 2
    return padded[:, :, top:top + height, left:left + width]  # n x c x height x width


def isa_from_scratch(x: torch.Tensor, module: ISAModule, down: int) -> torch.Tensor:
    """ISA on ``n x c x h x w`` with ``down x down`` blocks, written out: pad, regroup, attend, regroup, attend,
    crop. ``module`` lends its two attention blocks (``global_relation``, ``local_relation``)."""
    n, _, h, w = x.shape
    padded = pad(x, down)
    groups = module.global_relation(to_groups(padded, down))  # dense attention inside each long-range group
    padded = from_groups(groups, n, down)
    blocks = module.local_relation(to_blocks(padded, down))  # dense attention inside each block
    padded = from_blocks(blocks, n, padded.shape[2] // down, padded.shape[3] // down)
    return crop(padded, h, w)


# %%
print(steps_report({"pad": pad, "to_groups": to_groups, "from_groups": from_groups, "to_blocks": to_blocks,
                    "from_blocks": from_blocks, "crop": crop}))

# %% [markdown]
# The check: the package's `ISAModule` and yours, on the **same weights** (seeded random, BatchNorm in eval mode)
# and the same random map, in float64 so that only a real difference can exceed the tolerance. The map is
# this notebook's `HEIGHT x WIDTH`, which `DOWN_FACTOR` does not divide, so the padding and the crop are tested
# too.

# %%
reference = ISAModule(16, 8, (DOWN_FACTOR, DOWN_FACTOR))
reference.load_state_dict(random_state_dict(reference, seed=0))
reference.eval().double()
check_x = torch.randn(1, 16, HEIGHT, WIDTH, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    theirs, yours = reference(check_x), isa_from_scratch(check_x, reference, DOWN_FACTOR)
print(f"package {tuple(theirs.shape)}, yours {tuple(yours.shape)}; largest difference "
      f"{(theirs - yours).abs().max().item():.1e}; allclose: {torch.allclose(theirs, yours)}")
assert torch.allclose(theirs, yours), "isa_from_scratch differs from the package's ISAModule"

# %% [markdown]
# `allclose: True` — your twenty lines compute what the package's `ISAModule` computes, to float64 rounding, on a
# map its blocks do not divide. (Whether the module is mmsegmentation's `ISAHead` is a question for the package's
# parity test, not for this cell.) Change `HEIGHT` and `WIDTH` in the parameters cell to try other sizes.
#
# **See the pixels move.** Put each position's *index* in the map instead of features and push it through the
# package's two regroupings (`group_long_range` is the `pixel_unshuffle` step, `long_to_short_range` the block
# step). On a 6 x 6 map with 3 x 3 blocks: each index lands in the panel of its long-range group (same colour,
# one per block), then in the panel of its block (all colours, its neighbours). The permutes *are* the masks of
# section 3: who shares a panel attends together.

# %%
small_grid = Partition(6, 6, 3, 3)
display(plot_regrouping(small_grid))
_, by_group, by_block = regrouped_indices(small_grid)
print(f"group 0 holds positions {by_group[0].flatten().tolist()} (stride 3 in both directions), block 0 holds "
      f"{by_block[0].flatten().tolist()}")

# %% [markdown]
# ## 3. The matrix view: two sparse relations and their product
#
# Write each step as an $HW \times HW$ matrix over the positions of the padded map, in row-major order: entry
# $[q, r]$ is 1 when position $q$ may read position $r$ in that step. $L$ (long range) connects positions with
# the same in-block offset, $S$ (short range) positions of the same block; the trained weights $A_L$ and $A_S$
# can be non-zero only where $L$ and $S$ are 1. The drawing uses a small map (`MATRIX_SIZE`, `MATRIX_DOWN_FACTOR`)
# so that the 0/1 pattern is visible. Top: row-major order, as the map is stored — a scatter of stripes. Bottom:
# the same matrices with the positions reordered group by group — **block diagonal**, one dense block per group:
# each step *is* dense attention, inside its groups.

# %%
small = Partition(*MATRIX_SIZE, MATRIX_DOWN_FACTOR, MATRIX_DOWN_FACTOR)
display(plot_relation_masks(small))
long_m, short_m = long_range_mask(small), short_range_mask(small)
print(f"{small.padded_h}x{small.padded_w} map, {small.padded_h * small.padded_w} positions: L has "
      f"{int(long_m.sum())} ones ({long_m.float().mean():.0%} of the matrix), S has {int(short_m.sum())} "
      f"({short_m.float().mean():.0%}); dense attention would be 100%")

# %% [markdown]
# Both relations are sparse (the percentages above). Now the product: $(SL)[p, r] = \sum_q S[p, q]\,L[q, r]$
# counts the positions $q$ that are in $p$'s block *and* in $r$'s long-range group — the two-hop paths from
# $r$ to $p$. This is the paper's "product of two sparse affinity matrices", drawn with all three matrices in the
# block-by-block order.
#
# **Predict:** what is the *largest* entry of $SL$ — along how many different two-hop paths can one position reach
# another at most? Set `guess_paths`, then run the cell after it.

# %%
guess_paths = None  # your guess: the largest number of two-hop paths between two positions

# %%
display(plot_two_hop_product(small))
for name, part in (("small", small), ("parameter", p)):
    paths = short_range_mask(part).long() @ long_range_mask(part).long()
    print(f"{name} map {part.height}x{part.width} (padded {part.padded_h}x{part.padded_w}): S L has "
          f"{int((paths == 0).sum())} zeros among {paths.numel():,} entries; paths per pair: min {int(paths.min())}, "
          f"max {int(paths.max())}")
print(check_guess(guess_paths, int(paths.max()),
                  "a path r -> q -> p needs q in r's long-range group (r's offset) and in p's block; a block holds "
                  "each offset exactly once, so there is exactly one such q for every pair."))

# %% [markdown]
# No zero, and every entry is exactly 1: **every position reaches every other in two hops, along exactly one
# path**. This is the proof that ISA has a global receptive field, and it holds for any map and factor because
# a block and a long-range group always share exactly one position (one offset, one block). The package's test
# (`tests/models/test_relation_matrices.py`) checks the same count through the real regrouping code, by pushing a
# one-hot image of every pixel through `interlaced_attention` with "sum the group" relations.
#
# ## 4. The two-hop path of one pair
#
# The single path from `SOURCE` to `TARGET`: in step 1 a pixel reads its long-range group; in step 2 `TARGET`
# reads its block. So the message travels `SOURCE → via → TARGET`, where `via` is the one position of
# `TARGET`'s block with `SOURCE`'s in-block offset. `two_hop_path` computes it from that rule; the cell also reads
# it off the matrices, as the only $q$ with $S[\text{target}, q]\,L[q, \text{source}] = 1$.

# %%
source, via, target = two_hop_path(p, SOURCE, TARGET)


def flat(yx: tuple[int, int]) -> int:
    """Padded (row, col) -> its row-major position, the index of the HW x HW matrices."""
    return yx[0] * p.padded_w + yx[1]


short_m, long_m = short_range_mask(p), long_range_mask(p)
through = (short_m[flat(target)] & long_m[:, flat(source)]).nonzero().flatten().tolist()
print(f"padded coordinates: source {source} -> via {via} (step 1, long range) -> target {target} (step 2)")
print(f"from the matrices: the positions q with S[target, q] L[q, source] = 1 are {through}; "
      f"via is position {flat(via)}")
via_is_real = (0 <= via[0] - p.pad_top < p.height) and (0 <= via[1] - p.pad_left < p.width)
print(f"via {via} is {'a real pixel' if via_is_real else 'a PADDING position'} of this map")
figure = Figure(figsize=(5, 5.2), layout="constrained")
plot_two_hop(p, SOURCE, TARGET, ax=figure.subplots())
display(figure)

# %% [markdown]
# The rule and the matrix product name the same single position. One subtlety: `via` may be a **padding** position
# (the last line says which; with the default map try `TARGET = (11, 16)`). That still works, because padded positions
# are real members of the groups: the map is padded with zeros *before* attention, so a padded position takes part in
# step 1 like any pixel (it reads its long-range group) and passes the result on in step 2. The matrices count how
# many paths between real pixels go through the padding: the sum of $S[p, q]\,L[q, r]$ over padding positions $q$.

# %%
real = torch.zeros(p.padded_h, p.padded_w, dtype=torch.bool)
real[p.pad_top:p.pad_top + p.height, p.pad_left:p.pad_left + p.width] = True
real = real.flatten()
via_padding = int((short_m[real][:, ~real].long() @ long_m[~real][:, real].long()).sum())
pairs = int(real.sum()) ** 2
print(f"{via_padding:,} of {pairs:,} ordered pairs of real pixels ({via_padding / pairs:.0%}) travel through a "
      f"padding position; {int((~real).sum())} of the {real.numel()} padded positions are padding")

# %% [markdown]
# ## 5. Two hops reach everything, but ISA is not dense attention
#
# Reaching every pixel is not the same as being able to weigh every pixel freely. Since exactly one $q$ joins
# $r$ to $p$, the composed map is a single product,
#
# $$\mathrm{composed}[p, r] = A_S[p, v]\, A_L[v, r], \qquad v = \text{the position of } p\text{'s block with }
#   r\text{'s offset}.$$
#
# Take two pixels $p, p'$ of the **same block**: for every $r$ they go through the same $v$, so they read the same
# long-range row $A_L[v, \cdot]$, and $\mathrm{composed}[p, r] / \mathrm{composed}[p', r] = A_S[p, v] / A_S[p', v]$
# depends on $r$ only through its offset. Over a long-range group the two rows are proportional: the pixels of one
# block share their long-range rows and can only rescale them. Dense attention has no such tie. The cell measures it
# on real weights: an `ISAModule` and a dense block (`DenseAttention`, the same projections) with seeded random
# weights (untrained: the tie is structural, it does not depend on what the weights are) on a random map,
# `attention_matrices` for $A_L$, $A_S$ as $HW \times HW$ matrices, and the spread of the ratio of two rows inside
# each long-range group (max / min; 1 means proportional).

# %%
x = torch.randn(1, 64, *MATRIX_SIZE, generator=torch.Generator().manual_seed(0))
isa = ISAModule(64, 32, (MATRIX_DOWN_FACTOR, MATRIX_DOWN_FACTOR))
dense = DenseAttention(64, 32)
for module in (isa, dense):  # seeded random weights, BN with non-trivial statistics (no training involved)
    module.load_state_dict(random_state_dict(module, seed=0))
    module.eval()
with torch.no_grad():
    a_long, a_short = attention_matrices(isa.forward_with_attention(x).attention)
    a_dense = dense.relation.forward_with_attention(x).weights[0]
composed = a_short @ a_long  # composed[p, r] = sum_q A_S[p, q] A_L[q, r]
groups = long_range_group_ids(small).flatten()
pixel, partner, stranger = 0, 1, small.loc_h * small.padded_w  # two pixels of block 0, one of the next block row


def ratio_spread(rows: torch.Tensor, a: int, b: int) -> float:
    """Largest max/min of rows[a] / rows[b] over the long-range groups."""
    ratio = rows[a] / rows[b]
    return max((ratio[groups == g].max() / ratio[groups == g].min()).item() for g in groups.unique())


print(f"composed rows sum to 1: {torch.allclose(composed.sum(1), torch.ones(len(composed)))}; "
      f"smallest entry {composed.min():.2e} (no zero)")
print(f"ISA, two pixels of the top-left block (positions {pixel}, {partner}): ratio spread "
      f"{ratio_spread(composed, pixel, partner):.6f}")
print(f"ISA, pixels of two blocks (positions {pixel}, {stranger}):   ratio spread "
      f"{ratio_spread(composed, pixel, stranger):.3f}")
print(f"dense, the same two pixels {pixel}, {partner}:              ratio spread "
      f"{ratio_spread(a_dense, pixel, partner):.3f}")
figure = Figure(figsize=(11, 3.6), layout="constrained")
for ax, values, title in zip(figure.subplots(1, 3), (composed[pixel], composed[partner], composed[pixel] /
                                                     composed[partner]),
                             (f"composed row of position {pixel}", f"composed row of position {partner}",
                              "their ratio: one value per offset")):
    shown = ax.imshow(values.view(small.padded_h, small.padded_w).numpy(), cmap="viridis")
    figure.colorbar(shown, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize="medium")
    ax.set_xticks([])
    ax.set_yticks([])
display(figure)

# %% [markdown]
# The printed spreads say it: for two pixels of one block the ratio is constant on every long-range group (a spread of
# 1 up to rounding), and the right panel repeats with the block period — one value per in-block offset. Pixels of
# different blocks, and dense attention even for the very same two pixels, have spreads clearly above 1 (the other two
# lines): their rows are free to differ in shape, not only in scale. So ISA's **rollout** can take only those
# $N \times N$ forms whose rows, within a block, are rescalings of shared long-range rows: a restricted family, the
# price of the $O(N(P_hP_w + Q_hQ_w))$ cost. The paper's "product of two sparse affinity matrices" is such a
# restricted factorisation, not a rearrangement of dense attention.
#
# **Rollout is not influence.** All of this is about the weights. What the *module* does to its input is its
# Jacobian: the influence of pixel $r$ on output pixel $p$ is $\lVert \partial y_p / \partial x_r \rVert$ (the
# norm of a $C \times C$ block), which also counts how $r$ moves the weights themselves and what the
# conv-BN-ReLU output projections let through. `isanet.analysis.influence` computes it exactly with autograd on a
# small map (float64, a narrow copy of the module: the full Jacobian has $(CHW)^2$ entries) and sets it beside the
# rollout $A_SA_L$ of the same module on the same input.
#
# **Predict:** is the correlation between the measured influence and the rollout close to 1 (the rollout *is*
# the influence), about 0 (unrelated), or in between? Set `guess_correlation`, then run.

# %%
guess_correlation = None  # your guess: a number from -1 to 1

# %%
narrow = ISAModule(8, 4, (MATRIX_DOWN_FACTOR, MATRIX_DOWN_FACTOR))
narrow.load_state_dict(random_state_dict(narrow, seed=0))
narrow.eval().double()
narrow_x = torch.randn(1, 8, *MATRIX_SIZE, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
measured = influence_vs_rollout(narrow, narrow_x)
print(f"{MATRIX_SIZE[0]}x{MATRIX_SIZE[1]} map, 8 channels: influence > 0 for {(measured.influence > 0).float().mean():.0%}"
      f" of the pixel pairs; correlation of influence and rollout over all pairs: {measured.correlation:.2f}")
print(check_guess(guess_correlation, round(measured.correlation, 2),
                  "the rollout follows the routing of the values, so the two are related, but the Jacobian also "
                  "carries how each pixel moves the softmax weights and what the ReLU of each output projection lets "
                  "through; neither is in the product of the weights.", tolerance=0.15))

# %% [markdown]
# The first line: the module reads every pixel (two hops reach every pair, as the product of section 3 proved);
# the correlation printed is clearly below 1. Read a composed map as *where the attention weights route the
# values*, not as how much each pixel influences the output; notebook 02 draws these maps for a real model with
# the same caveat.
#
# ## 6. Over a picture
#
# In ISANet the map is the backbone's output, 1/8 of the image in each direction, and the published `down_factor` is
# 8: a block is 8 x 8 feature pixels = 64 x 64 image pixels (the cell prints it for `IMAGE_DOWN_FACTOR`). Below, the
# white lines are the blocks, orange is the chosen pixel's block (what it sees in step 2) and blue its long-range
# group (what it sees in step 1). With neither `IMAGE_FILE` nor `DATA_ROOT` set, the picture is a **synthetic sample**
# (flat shapes drawn by `isanet.data.synthetic`, not a photograph), and its title says so; set `IMAGE_FILE` to any
# picture of yours.

# %%
image_file, data_root = resolve_path(IMAGE_FILE, ROOT), resolve_path(DATA_ROOT, ROOT)
if image_file is not None:
    picture, label = read_image(image_file), f"your image {image_file.name}"
elif data_root is not None:
    picture, label = build_dataset(DATASET, data_root, split="val")[0]["image"], f"{DATASET} validation image"
else:
    sample_root = sample_dataset(DATASET, ROOT, num_train=1, num_val=2, size=IMAGE_WIDTH)
    picture, label = build_dataset(DATASET, sample_root, split="val")[0]["image"], "synthetic sample"
image = resize_image(picture, rescale_size(*picture.shape[:2], (IMAGE_WIDTH, IMAGE_WIDTH)))
feature_size = (-(-image.shape[0] // 8), -(-image.shape[1] // 8))   # the D8 backbone's output size
image_partition = Partition(*feature_size, IMAGE_DOWN_FACTOR, IMAGE_DOWN_FACTOR)
query = (feature_size[0] // 3, feature_size[1] // 3)
print(f"{label}: image {image.shape[0]}x{image.shape[1]} -> feature map {feature_size[0]}x{feature_size[1]}, "
      f"{image_partition.glb_h}x{image_partition.glb_w} blocks; query feature pixel {query}")
print(f"a block: {IMAGE_DOWN_FACTOR} x {IMAGE_DOWN_FACTOR} feature pixels = {IMAGE_DOWN_FACTOR * 8} x "
      f"{IMAGE_DOWN_FACTOR * 8} image pixels; the query's long-range group: "
      f"{image_partition.num_short_range_groups} positions, one per block")
display(plot_partition_over_image(image, image_partition, query, stride=8, source=label))

# %% [markdown]
# The blue squares are spread evenly over the whole picture, one per block: in step 1 the query pixel gathers
# context from every region of the image at once, and in step 2 it mixes that with its own block-sized
# neighbourhood (orange; its size in image pixels is printed above).
#
# ## 7. What it saves: the formulas, filled in
#
# Dense attention stores $N^2 = (hw)^2$ affinity entries per image. ISA stores, for the padded map of
# $HW$ positions, $HW \cdot Q_hQ_w$ in step 1 ($P_hP_w$ groups, each a $(Q_hQ_w)^2$ matrix) plus
# $HW \cdot P_hP_w$ in step 2:
#
# $$\underbrace{(hw)^2}_{\text{dense}} \quad\text{against}\quad \underbrace{HW\,(Q_hQ_w + P_hP_w)}_{\text{ISA}}
#   \qquad (\text{code: } HW \cdot (\mathtt{glb\_h} \cdot \mathtt{glb\_w} + \mathtt{loc\_h} \cdot \mathtt{loc\_w})).$$
#
# Each entry costs $d$ multiply-adds to form and $C$ to apply, which gives the paper's $O(N^2C)$ against
# $O(N(P_hP_w + Q_hQ_w)C)$; notebook 03 adds the projections and measures it.

# %%
display(HTML(complexity_html(image_partition)))

# %% [markdown]
# How the two grow with the map size (a square $n \times n$ map, `down_factor` 8), and, for the paper's 128 x 128
# map, which `down_factor` makes ISA cheapest. Without padding, $Q_hQ_w + P_hP_w = N/P^2 + P^2$ for square blocks
# of side $P$; it is smallest when the two group sizes are equal, $P^2 = \sqrt{N}$, so $P = N^{1/4}$ — for
# 128 x 128, $P = \sqrt{128} \approx 11.3$. But a $P$ that does not divide 128 pads the map, and the padded
# positions cost too; the cell below computes the exact cost for each $P$.

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
cheapest = [int(f) for f, entries in zip(factors, by_factor) if entries == min(by_factor)]  # every minimiser
dense128, isa128 = Partition(128, 128).affinity_entries()
print(f"128x128: dense {dense128 * 4 / 2**20:,.0f} MiB vs ISA {isa128 * 4 / 2**20:,.1f} MiB of affinities "
      f"({dense128 / isa128:.0f}x less at down_factor 8); the unpadded optimum 128**0.5 = {128**0.5:.2f}")
print(f"cheapest down_factor: {' and '.join(map(str, cheapest))}"
      f"{' (a tie: the same number of entries)' if len(cheapest) > 1 else ''}, {min(by_factor):,} entries; "
      f"the published 8 costs {isa128 / min(by_factor) - 1:.0%} more")
for f in range(8, 14):
    q = Partition(128, 128, f, f)
    print(f"  down_factor {f:>2}: glb {q.glb_h:>2}, padded {q.padded_h}x{q.padded_w} "
          f"(+{q.padded_h * q.padded_w / 128**2 - 1:.0%} positions), {q.padded_h * q.padded_w:,} positions x "
          f"({q.glb_h * q.glb_w} + {f * f}) = {q.affinity_entries()[1]:,} entries")

# %% [markdown]
# The table under the plot explains the integer answer. At 11 (closest to 11.3) the group sizes are
# balanced (144 + 121), but $\lceil 128/11 \rceil = 12$ blocks pad the map to 132 x 132 (the "+%" column); at 10,
# 13 blocks pad it only to 130 x 130, and $169 + 100 = 269$ is nearly as balanced. At 13 the roles swap: 10 blocks
# of 13 pad to the same 130 x 130 and the group sizes are $100 + 169$, the same sum — so 10 and 13 **tie**, as the
# "cheapest" line says. The published 8 pads nothing and costs the printed percentage more than the cheapest — a
# small price next to its saving over dense attention (the first printed line).
#
# ## 8. Try it: sliders
#
# Move the sliders to change the map size and `down_factor`, and click the map to move the source or the target
# (the buttons say which). Watch the padding (dashed box) when `down_factor` does not divide the size, the
# source's long-range group, the target's block, the two-hop path, and the numbers in the table. The explorer
# is one small web view (an anywidget: it runs in JupyterLab, VS Code and Colab, and on the course's site the
# very same view is a standalone page that answers without a kernel); a headless run only draws the first state.

# %%
explorer = PartitionExplorer(HEIGHT, WIDTH, DOWN_FACTOR, source=SOURCE, target=TARGET)
explorer

# %% [markdown]
# The view and Python share one state: after you move a slider or click, `explorer.height`, `explorer.width`,
# `explorer.down_factor`, `explorer.source` and `explorer.target` hold what you see, and setting one of them from
# Python (`explorer.down_factor = 6`) moves the view. The next cell reads it.

# %%
print(f"{explorer.partition}; {explorer.path_text()}")

# %% [markdown]
# ## Summary
#
# - ISA cuts a map into $Q_h \times Q_w$ blocks of $P_h \times P_w$ = `down_factor` pixels (padding it first,
#   symmetrically) and runs dense attention twice: inside each long-range group (same offset in every block),
#   then inside each block. In code: pad, `view`/`permute` into the batch dimension, attend, regroup, attend,
#   ungroup, crop.
# - As $HW \times HW$ matrices, both steps are sparse and block diagonal in the right order; their product $SL$
#   has no zero — every entry is 1 — so every position reaches every other along exactly one two-hop path.
# - Blocks alone or the stride-$P$ lattice alone are closed sets (section 0); one after the other they reach
#   everything. Written from scratch — pad, `pixel_unshuffle`, attend, `pixel_shuffle`, blocks, attend, crop —
#   ISA equals the package's module to float64 precision (section 2b).
# - It is not dense attention: $\mathrm{composed} = A_S A_L$, and the pixels of one block share their
#   long-range rows, which they can only rescale. That product is the weights-only rollout; the measured
#   influence $\lVert\partial y_p/\partial x_r\rVert$ of the real module correlates with it but is not it.
# - Affinity entries drop from $(hw)^2$ to $HW(Q_hQ_w + P_hP_w)$; ignoring padding the best block side is
#   $N^{1/4}$; with padding, 10 and 13 tie as the best `down_factor` for 128 x 128 (section 7 prints every
#   minimiser), and the published 8 is close.
#
# ## Exercises
#
# Each solution is a hidden code cell below its exercise (click the "..." to show it); try first.
#
# 1. *(easy)* By hand: for a 9 x 11 map and `down_factor` 4, what are `glb_h`, `glb_w`, the padded size and
#    the padding (left, right, top, bottom)? Check with `Partition`.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# glb = ceil(9/4) = 3 and ceil(11/4) = 3 -> padded 12 x 12; 3 rows of padding: 1 on top, 2 at the bottom
# (the odd one goes to the bottom); 1 column: 0 on the left, 1 on the right.
exercise = Partition(9, 11, 4, 4)
assert (exercise.glb_h, exercise.glb_w) == (3, 3)
assert (exercise.padded_h, exercise.padded_w) == (12, 12)
assert exercise.padding == (0, 1, 1, 2)
print(exercise, exercise.padding)

# %% [markdown]
# 2. *(easy)* On the 13 x 18 map with 4 x 4 blocks, predict `via` (in padded coordinates) for `SOURCE = (0, 0)`
#    and `TARGET = (12, 17)`. Check with `two_hop_path` and with the matrices.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Padding (1, 1, 1, 2): source (0, 0) is padded (1, 1), offset (1, 1); target (12, 17) is padded (13, 18),
# in the block whose top-left is (12, 16). via = that block's pixel with offset (1, 1) = (13, 17).
grid = Partition(13, 18, 4, 4)
_, predicted, _ = two_hop_path(grid, (0, 0), (12, 17))
assert predicted == (13, 17)
source_at, target_at = 1 * grid.padded_w + 1, 13 * grid.padded_w + 18
joined = (short_range_mask(grid)[target_at] & long_range_mask(grid)[:, source_at]).nonzero().flatten().tolist()
assert joined == [13 * grid.padded_w + 17]
print(f"via {predicted}, position {joined[0]} in the matrices")

# %% [markdown]
# 3. *(medium)* Derive that the block side minimising ISA's affinity entries on an unpadded $n \times n$ map is
#    $P \approx \sqrt{n} = (n^2)^{1/4}$. Then find the cheapest integer `down_factor` for a 97 x 97 and a
#    256 x 256 map (all of them, if several tie) and compare with the formula.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Entries per position: Q_h Q_w + P_h P_w = N / P^2 + P^2 for square blocks of side P, with N = n^2 positions.
# With u = P^2: d/du (N/u + u) = -N/u^2 + 1 = 0  ->  u = sqrt(N)  ->  P = N^(1/4) = (n^2)^(1/4) = sqrt(n).
for side in (97, 256):
    costs = {f: Partition(side, side, f, f).affinity_entries()[1] for f in range(1, 65)}
    minimisers = [f for f in costs if costs[f] == min(costs.values())]  # min() alone would hide a tie
    padded = ", ".join(f"{f} pads to {Partition(side, side, f, f).padded_h}" for f in minimisers)
    print(f"{side}x{side}: sqrt(n) = {side ** 0.5:.2f}; cheapest integer down_factor(s) {minimisers} "
          f"({padded}; {min(costs.values()):,} entries)")

# %% [markdown]
# 4. *(medium)* Swap the order: short range first, then long range. Does every pixel still reach every other?
#    Which matrix product answers it, and what is `via` now?

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Now the message goes r -> (block step) -> q -> (long-range step) -> p: composed = A_L A_S, mask L S.
for part in (small, grid):
    swapped = long_range_mask(part).long() @ short_range_mask(part).long()
    assert torch.equal(swapped, torch.ones_like(swapped))
print("L S has every entry 1 too: still exactly one path per pair")
# via is the q with L[target, q] S[q, source] = 1: read it off the matrices, then compare with the rule
# "SOURCE's block, TARGET's offset" (the paper's ablation compares the two orders).
(s_y, s_x), (t_y, t_x) = (1, 1), (13, 18)  # exercise 2's pair, in padded coordinates
s_at, t_at = s_y * grid.padded_w + s_x, t_y * grid.padded_w + t_x
swapped_via = (long_range_mask(grid)[t_at] & short_range_mask(grid)[:, s_at]).nonzero().flatten().tolist()
origin_y, origin_x = grid.block_origin(s_y, s_x)
offset_y, offset_x = grid.offset(t_y, t_x)
rule = (origin_y + offset_y) * grid.padded_w + origin_x + offset_x
assert swapped_via == [rule], (swapped_via, rule)
print(f"swapped order, source {(s_y, s_x)} -> target {(t_y, t_x)}: via is position {swapped_via[0]} = "
      f"{divmod(swapped_via[0], grid.padded_w)}, the source's block with the target's offset")

# %% [markdown]
# 5. *(hard)* Show for **every** block and **every** pair of its pixels, not just one pair, that their composed
#    rows are proportional on each long-range group (use `composed`, `small` and the ids from section 5). How
#    many numbers does a block's set of composed rows then depend on, against dense attention?

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
blocks = short_range_group_ids(small).flatten()
worst = 1.0
for block in blocks.unique():
    members = (blocks == block).nonzero().flatten().tolist()
    for a in members:
        for b in members:
            if a < b:
                worst = max(worst, ratio_spread(composed, a, b))
print(f"largest ratio spread over all same-block pairs: {worst:.6f}")
assert worst < 1 + 1e-4
# A block's P_h P_w composed rows are A_S[p, v] A_L[v, r]: the block's short-range matrix, (P_h P_w)^2 numbers,
# and its P_h P_w long-range rows of Q_h Q_w numbers each; dense attention gives those rows P_h P_w x N numbers.
loc_pixels, glb_pixels = small.loc_h * small.loc_w, small.glb_h * small.glb_w
print(f"per block: ISA {loc_pixels ** 2 + loc_pixels * glb_pixels} weights, "
      f"dense {loc_pixels * loc_pixels * glb_pixels}")

# %% [markdown]
# ## Further reading
#
# - Huang et al., *Interlaced Sparse Self-Attention for Semantic Segmentation*,
#   [arXiv:1907.12273](https://arxiv.org/abs/1907.12273): the method section (self-attention, the interlaced
#   factorisation as a product of two sparse affinity matrices, padding, complexity) and the ablations of the
#   block size and of the order of the two steps.
# - The code this kit matches: mmsegmentation `mmseg/models/decode_heads/isa_head.py`
#   ([github.com/open-mmlab/mmsegmentation](https://github.com/open-mmlab/mmsegmentation)), and the authors'
#   openseg.pytorch `lib/models/modules/isa_block.py`.
# - Dense attention as a vision block: Wang et al., *Non-local Neural Networks*,
#   [arXiv:1711.07971](https://arxiv.org/abs/1711.07971).
# - Other factorisations with the same "two hops reach everything" idea: Child et al., *Generating Long
#   Sequences with Sparse Transformers* (strided + local patterns),
#   [arXiv:1904.10509](https://arxiv.org/abs/1904.10509);
#   Huang et al., *CCNet: Criss-Cross Attention*, [arXiv:1811.11721](https://arxiv.org/abs/1811.11721); Ho et
#   al., *Axial Attention in Multidimensional Transformers*, [arXiv:1912.12180](https://arxiv.org/abs/1912.12180).
#
# **Next:** notebook 02 shows the attention weights a real model puts on these groups, for any pixel you click.
