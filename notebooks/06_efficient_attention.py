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
# # 06 · Why ISA? The efficient attentions of its time, side by side
#
# **Goal:** put ISA next to the other ways of cutting the `(hw)²` affinity of dense self-attention — criss-cross
# (CCNet), axial, windows (Swin) and the strided pattern of the Sparse Transformer — on the same map and the same
# projections, and see what each gives up: which pixels a query can read after one and after two layers, and
# what each costs, measured.
#
# **You will learn**
#
# - that every efficient attention here is dense attention with a *pattern*: a boolean mask applied before the
#   softmax (and a cell that checks it for each module, in float64);
# - how to read a pattern as "who reaches whom", and why stacking layers multiplies patterns;
# - why ISA and criss-cross reach the whole map in two hops, while windows need shifts and depth;
# - whether reach shows in accuracy: each method's measured mIoU on a task that needs far context, beside its reach;
# - how the affinity count of each method grows with the map, and what that means in measured memory, FLOPs and
#   time on your machine.
# - what a block-sparse kernel (FlexAttention) really computes: its tiles, and why the pixel order decides
#   how much of a pattern's saving it keeps.
#
# **Prerequisites:** notebook 01 (ISA's long-range groups and short-range blocks, the two-hop path);
# scaled dot-product attention, $\mathrm{softmax}(QK^\top/\sqrt{d})\,V$. No data, weights or GPU needed.
#
# **Notation:** every letter used in notebooks 01–07 is on one card, [notation.md](notation.md).

# %% tags=["parameters"]
# Parameters — change them and re-run.
HEIGHT, WIDTH = 18, 26     # the map for the pictures and the reach table; SIZE does not divide it (ISA pads)
SIZE = 4                   # window side = stride = ISA down_factor for the pictures (4: small maps show more)
PIXEL = (5, 9)             # the query pixel (row, col)
COST_SIZE = 8              # window side / stride / down_factor for the measurements (the published 8)
COST_SIZES = None          # map sides to measure; None: (16, 32) when QUICK, else (32, 64)
CHANNELS, KEY_CHANNELS = 512, 256   # the published ISA head's widths; QUICK uses 128, 64
DEVICE = "cpu"             # where to measure: "cpu", "cuda" or "auto" (a GPU when there is one)
QUICK = None               # None: small settings when run by a test runner (pytest --nbmake, CI)
THREADS = None             # torch CPU threads; None: 1 when QUICK, else torch's default

# %% [markdown]
# ## Set-up

# %%
# %matplotlib inline
import inspect

import torch
from IPython.display import HTML, Code, display

from isanet.analysis.attention_bench import bench_attention, format_rows
from isanet.analysis.cost import pattern_cost
from isanet.analysis.reach import reach, reach_table
from isanet.data.context import CONTEXT_DEFAULTS, MIN_CUE_DISTANCE
from isanet.data.sample_checkpoint import random_state_dict
from isanet.engine.recipes import get_recipe
from isanet.models.config import ISANetConfig
from isanet.models.efficient.base import compose, masked_dense
from isanet.models.efficient.registry import METHODS, build_attention
from isanet.models.heads import HEADS
from isanet.notebook.attention_patterns import (
    ReachExplorer,
    plot_affinity_growth,
    plot_hops,
    plot_reach,
    reach_html,
)
from isanet.notebook.quiz import check_guess
from isanet.notebook.session import configure_torch, quick_mode
from isanet.notebook.teaching import reference_results, summarize

quick = quick_mode(QUICK)
device = configure_torch(DEVICE, THREADS, quick)
cost_sides = COST_SIZES or ((16, 32) if quick else (32, 64))
channels, key_channels = (128, 64) if quick else (CHANNELS, KEY_CHANNELS)
print(f"{'QUICK (test-runner) settings' if quick else 'notebook settings'}: map {HEIGHT}x{WIDTH}, size {SIZE}, "
      f"measured sides {cost_sides} with {channels}/{key_channels} channels, methods {tuple(METHODS)}")

# %% [markdown]
# ## 1. One idea: dense attention with a mask
#
# Dense (non-local) attention lets each of the $N = hw$ pixels read all $N$ pixels:
#
# $$\mathrm{out}_i = \sum_{j=1}^{N} A_{ij}\, v_j, \qquad A = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d}}\right),$$
#
# an $N \times N$ affinity: $(hw)^2$ entries. Every method in this notebook computes the same thing with most
# entries left out. Which ones it keeps is its **pattern** $\mathcal{P} \in \{0, 1\}^{N \times N}$ (row = query,
# column = key): it is dense attention with $-\infty$ added where $\mathcal{P}_{ij} = 0$,
#
# $$A = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d}} + M\right), \qquad
#   M_{ij} = \begin{cases} 0 & \mathcal{P}_{ij} = 1\\ -\infty & \mathcal{P}_{ij} = 0.\end{cases}$$
#
# For a query at $(y, x)$ and a key at $(y', x')$, with $k$ = `size` (window side, stride, ISA's `down_factor`):
#
# | method | code | the query reads the key when | hops / layer |
# | --- | --- | --- | --- |
# | dense (non-local) | `DenseAttention` | always | 1 |
# | criss-cross (CCNet) | `CrissCrossAttention` | $y' = y$ or $x' = x$ (query counted once: $h + w - 1$ keys) | 1 |
# | axial | `AxialAttention` | hop 1: $y' = y$ (row); hop 2: $x' = x$ (column) | 2 |
# | window (Swin) | `WindowAttention` | $\lfloor (y+s)/k \rfloor = \lfloor (y'+s)/k \rfloor$, same for $x$; shift $s = 0$ or $k/2$ | 1 |
# | strided (Sparse Tr., 2-D) | `StridedAttention` | same $k \times k$ block, or $y' \equiv y$, $x' \equiv x$ mod $k$ | 1 |
# | ISA | `ISAModule` | padded map; hop 1: $y' \equiv y$, $x' \equiv x \pmod{k}$; hop 2: same $k \times k$ block | 2 |
#
# Notation: $k$ is what notebooks 01–03 call $P_h = P_w$ (ISA's `down_factor`, the block side); $Q_h, Q_w$
# below count the blocks along each axis (`glb_h`, `glb_w`) and are not the query matrix $Q$. As in 01–03,
# $h \times w$ is the map and $H \times W$ the map padded to whole blocks.
#
# In the code, $Q$, $K$, $V$ are `SelfAttentionBlock.tokens(x)`; every module owns the *same* projections as the
# dense block (one `SelfAttentionBlock` per hop), so the methods differ **only** in their pattern. The next cell
# checks it for every method (both window layers, plain and shifted) and both kernels (`matmul`, `sdpa`): with
# random weights in float64 on the `HEIGHT x WIDTH` map, which `SIZE` does not divide, it prints each module's
# hops and projections, and how far its output is from the masked formula above computed the slow way
# (`masked_dense`: the full $N \times N$ logits of each hop, $-\infty$ outside its mask); and, so that the match
# is no accident, how far it is from dense attention on the same first projections.

# %%
features = torch.randn(1, 12, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
gaps = {}
for method in METHODS:
    for layer in (1, 2) if method == "window" else (1,):
        for kernel in ("matmul", "sdpa"):
            module = build_attention(method, 12, 6, kernel, size=SIZE, layer=layer)
            module.load_state_dict(random_state_dict(module, seed=0))
            module = module.double().eval()
            with torch.no_grad():
                out, slow = module(features), masked_dense(module, features)
            gaps[method, layer, kernel] = ((out - slow).norm() / slow.norm()).item()
        dense_twin = build_attention("dense", 12, 6).double().eval()
        dense_twin.relation.load_state_dict(module.relations()[0].state_dict())  # the same (first) projections
        with torch.no_grad():
            from_dense = ((out - dense_twin(features)).norm() / slow.norm()).item()
        projections = ", ".join(type(block).__name__ for block in module.relations())
        print(f"{method:>8}{' shifted' if layer == 2 else '        '}: {len(module.hop_masks(HEIGHT, WIDTH))} hop(s), "
              f"projections {projections}; |out - masked formula| / |masked formula|: matmul "
              f"{gaps[method, layer, 'matmul']:.0e}, "
              f"sdpa {gaps[method, layer, 'sdpa']:.0e}; from dense {from_dense:.2f}")
print(f"largest gap to the masked formula: {max(gaps.values()):.1e} (float64 rounding); SIZE {SIZE} divides "
      f"{HEIGHT}x{WIDTH}: {HEIGHT % SIZE == 0 and WIDTH % SIZE == 0}")

# %% [markdown]
# Every module sits at float64 rounding from its masked formula, and at a distance of order 1 from dense attention
# on the same projections (the "from dense" column): the tiny gaps are no accident of near-uniform weights, the
# patterns change the output and the modules compute exactly their patterns.
#
# **What "one layer" means.** One layer is one module. ISA's module — the one ISANet puts in its head — is
# itself *two* attention hops (long range, then short range, each with its own projections), and so is axial
# attention (row, then column). Criss-cross, window and strided layers are one hop each. So "ISA reaches the
# whole map in one layer" is a statement about two hops; the fair comparison with criss-cross is ISA's one
# layer against criss-cross's two. The table below lists hops per layer next to every reach.
#
# What one layer reaches is `module.reach(h, w)`; for the two-hop modules it is the product of the masks of
# their hops, `module.hop_masks(h, w)`. Here are the hops of ISA (over its padded map; dashed box = the real map) and of axial
# attention, for the query `PIXEL`:

# %%
display(plot_hops("isa", HEIGHT, WIDTH, PIXEL, SIZE))
display(plot_hops("axial", HEIGHT, WIDTH, PIXEL, SIZE))
isa = build_attention("isa", 2, 1, size=SIZE)
print(f"ISA pads {HEIGHT}x{WIDTH} by (left, right, top, bottom) = {isa.padding(HEIGHT, WIDTH)}; "
      f"one ISA layer reaches {isa.reach(HEIGHT, WIDTH).float().mean():.0%} of the map, through its two hops")

# %% [markdown]
# ISA's first hop reads one pixel per block (the long-range group, a stride-`SIZE` lattice), its second the
# query's own block; axial reads the row, then the column. Each hop is cheap and local in one sense, and their
# product covers everything.
#
# ## 2. Reach after one and two layers
#
# Stacking layers multiplies patterns: information from key $j$ reaches query $i$ after two layers when some
# pixel $m$ read $j$ in layer 1 and $i$ read $m$ in layer 2,
#
# $$R^{(2)} = \mathcal{P}^{(2)} \cdot \mathcal{P}^{(1)} \quad\text{(boolean product: }
#   R^{(2)}_{ij} = \textstyle\bigvee_m \mathcal{P}^{(2)}_{im} \wedge \mathcal{P}^{(1)}_{mj}\text{)}.$$
#
# `isanet.analysis.reach` computes exactly that from the modules' own patterns (`compose`). The second window
# layer uses shifted windows, as Swin alternates them; every other method repeats its layer. Blue = what the
# query (star) has read from; thin lines = the `SIZE` grid.
#
# **Predict:** one criss-cross layer reads the query's row and column. After **two** criss-cross layers, what
# fraction of the `HEIGHT x WIDTH` map has `PIXEL` read from? Set `guess_cross_reach` (0 to 1), then run.

# %%
guess_cross_reach = None  # your guess: PIXEL's reach after two criss-cross layers, a fraction of the map

# %%
display(plot_reach(HEIGHT, WIDTH, PIXEL, SIZE))
query_index = PIXEL[0] * WIDTH + PIXEL[1]
print(check_guess(guess_cross_reach,
                  round(reach("ccnet", HEIGHT, WIDTH, SIZE, 2)[query_index].float().mean().item(), 3),
                  "every pixel of the query's cross has read its own cross in layer 1, and those crosses cover every "
                  "row and every column: any key (y', x') is on the cross of (y, x'), which is on the query's row."))
for layers in (1, 2, 3):
    window_rows, window_cols = reach("window", HEIGHT, WIDTH, SIZE, layers)[query_index].view(HEIGHT, WIDTH).nonzero(
        as_tuple=True)  # HW -> H x W: the reached pixels' rows and columns
    print(f"windows, {layers} layer(s): PIXEL {PIXEL} has read rows {window_rows.min().item()}-"
          f"{window_rows.max().item()}, columns {window_cols.min().item()}-{window_cols.max().item()}")


# %% [markdown]
# **The figure's code.** This picture is the lesson of the section, so here is the code that draws it (collapsed:
# unfold the cell): `plot_reach` asks `isanet.analysis.reach` which keys each method's pattern lets the query read after one and two layers and paints them over the map.

# %% jupyter={"outputs_hidden": true, "source_hidden": true}
display(Code(inspect.getsource(plot_reach), language="python"))
# %% [markdown]
# Read the columns:
#
# - **criss-cross**: one layer sees a cross ($h + w - 1$ pixels); the second layer reads the crosses of all
#   pixels on that cross — the whole map. Two hops, full reach, like ISA.
# - **axial** and **ISA**: full reach after one layer, because each layer is two hops.
# - **window**: one layer never leaves its window; the shifted second layer reaches some of the neighbouring
#   windows (for `PIXEL`, the rows and columns printed), and for the worst-placed query little or none (section
#   4's lines print that case on two maps). The last lines of the cell print how far `PIXEL`'s window reach extends after one, two and three
#   layers: a few pixels per layer, so full reach needs depth (and Swin adds it through a hierarchy of
#   down-sampling stages).
# - **strided**: one layer reads the query's block *and* its lattice at once, in one softmax — the same two
#   groups as ISA, used side by side instead of one after the other. The second layer reaches most of the map;
#   whether it reaches all of it for every query (blocks cut by the map's edge have fewer offsets) is what the
#   reach table of section 4 prints.
#
# ## 3. Try it: move the query
#
# Click a panel (or hover it and press the arrow keys) to move the query, and use the slider to change `size`
# (window side, stride, `down_factor`). Watch the window reach depend on where the query sits in its window, and
# the corners (try row 0, col 0). The explorer is an anywidget: the same view is the standalone page on the
# course's site, and `explorer.pixel` and `explorer.size` hold what you see (set them from Python to move it). A
# headless run draws only the first state.

# %%
explorer = ReachExplorer(HEIGHT, WIDTH, PIXEL, SIZE)
explorer

# %% [markdown]
# ## 4. The reach table, and what one layer computes
#
# For every pixel as the query: the fraction of the map reached after one and two layers (mean over pixels;
# the worst-placed pixel in brackets) and the affinity entries one layer computes per image. The entries come
# from each module's `affinity_entries` formula — what it materialises, padded or masked entries included:
#
# | method | affinity entries per layer |
# | --- | --- |
# | dense | $(hw)^2$ |
# | ISA | $HW\,(Q_h Q_w + k^2)$ over the padded $H \times W$ map ($Q_h Q_w = HW/k^2$ blocks of $k^2$ pixels) |
# | criss-cross | $hw\,(h + w)$ (the query's duplicate in its column is computed, then masked) |
# | axial | $hw\,w + hw\,h$ |
# | window | $H W k^2$ over the map padded to whole windows |
# | strided | $H W (k^2 + Q_h Q_w)$ over the padded map (block plus lattice) |

# %%
rows = reach_table(HEIGHT, WIDTH, SIZE)
display(HTML(reach_html(rows)))
table_8 = reach_table(32, 32, 8)
display(HTML(reach_html(table_8)))
for name, table in ((f"{HEIGHT}x{WIDTH}, size {SIZE}", rows), ("32x32, size 8", table_8)):
    # the worst-placed pixel's reach (the "min") is 1 when every pixel reaches the whole map
    one = [row.method for row in table if row.reach_1_min == 1]
    two = [row.method for row in table if row.reach_2_min == 1 and row.reach_1_min < 1]
    never = [row.method for row in table if row.reach_2_min < 1]
    print(f"{name}: every pixel reaches the whole map after 1 layer: {', '.join(one)}; after 2 layers: "
          f"{', '.join(two) or 'no other'}; not after 2: {', '.join(never) or 'none'}")
    window = next(row for row in table if row.method == "window")
    gain = "adds nothing" if window.reach_2_min == window.reach_1_min else "adds some"
    print(f"  windows, worst-placed pixel: {window.reach_1_min:.1%} of the map after 1 layer, "
          f"{window.reach_2_min:.1%} after 2 (the shifted layer {gain})")
    print("  affinity entries per layer, share of dense: "
          + ", ".join(f"{row.method} {row.affinity_vs_dense:.1%}" for row in table if row.method != "dense"))

# %% [markdown]
# The first table is the picture's map (`SIZE`); the second a 32 x 32 map with the published size 8. The lines
# under them read the tables for you: which methods let *every* pixel (the "min" column) reach the whole map
# after one layer and after two, how far the worst-placed window query gets with and without the shifted layer,
# and each method's affinity entries as a share of dense's. Dense, ISA and axial reach everything in one layer
# (one hop, two hops, two hops); criss-cross needs two; windows stay near their window. The shares of dense
# depend on the map and `size`; how they grow with the map is the next picture:

# %%
display(plot_affinity_growth(list(range(8, 257, 8)), size=8))
for side in (64, 128):
    counts = {method: build_attention(method, 2, 1, size=8).affinity_entries(side, side) for method in METHODS}
    print(f"{side}x{side}: " + ", ".join(f"{method} {count / counts['dense']:.2%}" for method, count in
                                          counts.items() if method != "dense") + " of dense")

# %% [markdown]
# On an `n x n` map, dense grows as $n^4$; criss-cross and axial as $2n^3$; a fixed window as $n^2 k^2$; ISA
# as $n^2 (n^2/k^2 + k^2)$ — which, for a fixed `down_factor` $k$, also turns into $n^4$ eventually (the
# long-range groups grow with the map), unless $k$ grows with the map (the best is $k \approx \sqrt{n}$, see
# notebook 01). The strided pattern has the same count as ISA: same two groups, one softmax.
#
# **Predict:** at 128 x 128 with `size` 8, which method computes the *fewest* affinity entries per layer? And is it
# one that reaches the whole map? Set `guess_fewest` to a method name (`ccnet`, `axial`, `window`, `strided` or
# `isa`), then run.

# %%
guess_fewest = None  # your guess: the method with the fewest affinity entries per layer at 128 x 128, size 8

# %%
at_128 = {method: build_attention(method, 2, 1, size=8).affinity_entries(128, 128) for method in METHODS}
fewest = min(at_128, key=at_128.get)
print(f"128x128, size 8: {fewest} computes {at_128[fewest]:,} entries per layer, {at_128['isa'] / at_128[fewest]:.0f}x "
      f"fewer than ISA")
print(check_guess(guess_fewest, fewest, "a window costs HWk^2, linear in the map; but it never leaves its window in "
                  "one layer (section 2): the cheapest pattern is the one that reaches least."))

# %% [markdown]
# ### Reach against accuracy: the context task
#
# Reach is geometry. Does it decide anything a model can learn? The kit's context task (`isanet.data.context`,
# the teaching model of notebook 02) is built so that it must: identical grey objects take the team of a coloured
# beacon that is always at least 30 % of the picture away from them, where the small backbone's convolutions
# reach faintly at best (notebook 04 measures it). The methods here were trained as decode heads on it with the
# teaching recipe (the same backbone, projections and schedule for every head; `benchmarks/context_experiment.py`,
# several seeds; the cell prints the run's task, recipe and sizes). The cell computes each head's reach on the map
# it attends over (160-px pictures at stride 8: 20 x 20, with the recipe's `down_factor` for ISA and strided, the
# window head's own side, and as many layers as the head stacks) and puts beside it the **reference run's**
# validation mIoU, mean and spread (max - min) over the seeds. `none` is the head without a context module; a head
# the reference run did not train says so.

# %%
side = CONTEXT_DEFAULTS["size"] // 8             # the 20 x 20 feature map of a 160-px picture (stride 8)
reference = reference_results()
teaching_size = get_recipe(reference["recipe"]).model_overrides["down_factor"][0]  # the run's ISA / strided block
head_sizes = {"window": ISANetConfig().window_size}  # the window head's side; every other head uses down_factor
cue_pixels = int(MIN_CUE_DISTANCE * side)        # the least beacon-to-object gap, in feature pixels
print(f"reference run: task {reference['task']!r}, recipe {reference['recipe']!r} (down_factor {teaching_size}, "
      f"window side {head_sizes['window']})")
accuracy = summarize(reference["rows"])
ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
ys, xs = ys.flatten(), xs.flatten()              # side x side -> HW: each pixel's row and column


def head_reach(head: str) -> tuple[float, float, int]:
    """Mean and worst-pixel reach of the head's attention on the teaching map, and the farthest pixel (in feature
    pixels, the larger of the row and column gaps) any query reads from."""
    if HEADS[head].hops == 0:
        return 1 / side**2, 1 / side**2, 0
    size = head_sizes.get(head, teaching_size)
    per_layer = len(build_attention(head, 2, 1, size=size).hop_masks(side, side))
    reached = reach(head, side, side, size, layers=HEADS[head].hops // per_layer)
    gap = torch.maximum((ys[:, None] - ys[None]).abs(), (xs[:, None] - xs[None]).abs())  # HW x HW
    fraction = reached.sum(1).double() / side**2
    return fraction.mean().item(), fraction.min().item(), int(gap[reached].max())


print(f"reference run: {reference['data']}, {reference['rows'][0]['iters']} iterations per run, on "
      f"{reference['machine']}")
print(f"{'head':>8}  {'reach (min)':>15}  {'farthest':>8}  mIoU mean +- spread (seeds)")
reaches = {}
for head in HEADS:
    reaches[head] = head_reach(head)
    mean_reach, worst, far = reaches[head]
    shown = (f"{accuracy[head]['mean']:6.2f} +- {accuracy[head]['spread']:.2f} ({len(accuracy[head]['seeds'])})"
             if head in accuracy else "   not in the reference run")
    print(f"{head:>8}  {mean_reach:6.1%} ({worst:6.1%})  {far:8d}  {shown}")
print(f"the beacon is at least {cue_pixels} feature pixels from every object pixel")

# %% [markdown]
# The next cell reads the table: whether the heads that reach the whole map all score above those that do not,
# by their means and on every seed (a head that can reach the beacon may still stall on a seed), and where the
# window head stands against ISA, with "below" meaning below on every seed (the seed ranges do not overlap), not
# just on average.

# %%
trained_heads = [head for head in HEADS if head in accuracy]
whole = [head for head in trained_heads if reaches[head][1] == 1]
partial = [head for head in trained_heads if head not in whole]
by_accuracy = sorted(trained_heads, key=lambda head: -accuracy[head]["mean"])
print("by mean mIoU: " + " > ".join(f"{head} {accuracy[head]['mean']:.1f}" for head in by_accuracy))
if whole and partial:
    by_mean = min(accuracy[h]["mean"] for h in whole) > max(accuracy[h]["mean"] for h in partial)
    by_seed = min(min(accuracy[h]["mIoU"]) for h in whole) > max(max(accuracy[h]["mIoU"]) for h in partial)
    print(f"every head that reaches the whole map ({', '.join(whole)}) scores above every head that does not "
          f"({', '.join(partial)}): by mean {'yes' if by_mean else 'no'}; on every seed {'yes' if by_seed else 'no'}")
    lowest = min(whole, key=lambda h: min(accuracy[h]["mIoU"]))
    print(f"the lowest seed of a whole-map head: {lowest} {min(accuracy[lowest]['mIoU']):.2f}; the highest of the "
          f"others: {max(max(accuracy[h]['mIoU']) for h in partial):.2f}")
if {"isa", "window"} <= set(accuracy):
    window_run, isa_run = accuracy["window"], accuracy["isa"]
    window_far = reaches["window"][2]
    where = ("below ISA on every seed" if max(window_run["mIoU"]) < min(isa_run["mIoU"]) else
             "above ISA on every seed" if min(window_run["mIoU"]) > max(isa_run["mIoU"]) else
             "not measurably different from ISA (the seed ranges overlap)")
    print(f"window: its attention reads at most {window_far} feature pixels away "
          f"({'less' if window_far < cue_pixels else 'not less'} than the beacon's {cue_pixels}); mean mIoU "
          f"{window_run['mean']:.1f} against ISA's {isa_run['mean']:.1f}: {where} "
          f"({min(len(window_run['seeds']), len(isa_run['seeds']))} seeds)")

# %% [markdown]
# Read the lines above, not this paragraph, for the verdict: they are computed from the reference run. What the
# design predicts is that a head whose attention cannot reach the beacon does no better than the head without a
# context module (it must guess the team), and that ISA, dense and the other whole-map heads can learn the task.
# The farthest column counts attention only: the backbone's receptive field adds a few feature pixels to every
# head, the same for all of them, faintly (notebook 04 measures it); `none`, the backbone alone, shows that this
# faint reach does not carry the team. The reference run's full table, with the commands that made it, is in
# `benchmarks/README.md`.

# %% [markdown]
# ## 5. Measured: memory, FLOPs and time
#
# Counting entries is not the whole cost: projections, reshapes, masks and kernels matter. `bench_attention`
# (what `isanet bench attention --methods ...` runs) measures every method on the same input, interleaved, on
# this machine. Criss-cross and strided have no form PyTorch's fused `sdpa` kernel takes (each query has its own
# key set), so their `sdpa*` rows are computed explicitly; windows on a map the window does not divide pass a
# mask to `sdpa`, which on a CPU means its unfused path (not the case on the sides measured here, which the window
# divides). Each row's time is the median of interleaved repeats, with the fastest and slowest in brackets; the
# repeats are interleaved within one kernel and one size, so compare times inside such a block.

# %%
measured = bench_attention([(side, side) for side in cost_sides], channels=channels, isa_channels=key_channels,
                           down_factor=(COST_SIZE, COST_SIZE), methods=tuple(METHODS), device=device,
                           repeats=2 if quick else 5, warmup=1)
print(f"{channels} channels, key width {key_channels}, size {COST_SIZE}, on {device}"
      f"{' (QUICK: small channels and maps)' if quick else ''}")
print(format_rows(measured))
for side in cost_sides:
    flops = {row.method: row.flops for row in measured if row.height == side and row.kernel == "matmul"}
    dense_peaks = {row.kernel: row.peak_memory_bytes for row in measured
                   if row.height == side and row.method == "dense" and row.peak_memory_bytes is not None}
    print(f"{side}x{side}: more FLOPs than dense: {[m for m in METHODS if flops[m] > flops['dense']] or 'none'}; "
          "dense peak " + ", ".join(f"{kernel} {peak / 2**20:.1f} MiB" for kernel, peak in dense_peaks.items()))
    formula = {m: pattern_cost(build_attention(m, 2, 1, size=COST_SIZE), side, side, channels, key_channels).total
               for m in METHODS}
    print(f"  counted FLOPs = 2 (d + C) x entries + projections per hop, for every method: {formula == flops}")

# %% [markdown]
# What it shows (the numbers above are this run's; times on a shared CPU are noisy, memory and FLOPs are not):
#
# - **FLOPs** follow the affinity counts of section 4 plus the projections: the last lines compare each counted
#   `matmul` row with `pattern_cost`, $2(d + C)$ per affinity entry plus one set of projections per hop. The two-hop methods (ISA, axial) pay the projections twice: on a small map that can outweigh
#   what they save in affinities, so that they count *more* FLOPs than dense; as the map grows the affinities
#   dominate and they count fewer. The last lines print, for each measured side, which methods count more.
# - **Peak memory** of the explicit (`matmul`) rows grows with the affinity entries once those dominate the
#   activations. Compare dense's two peaks in the last lines: a fused kernel never stores the affinity, so
#   where it is fused and the affinity dominates (the larger side), dense's memory drops towards the others'
#   while its FLOPs do not; on the smaller side the two peaks can be equal. With fused kernels, the case for
#   sparse patterns rests on FLOPs and time more than on memory.
# - **Fused `sdpa` rows** (not the explicit `sdpa*`) count at least as many FLOPs as the `matmul` rows of the same
#   method, visibly more on the larger side: on a CPU the fused kernel wants
#   values as wide as the keys, so the package splits the values into slices of the key width that share one
#   softmax, and $QK^\top$ is computed once per slice (`isanet.models.attention.fused_attention`).
# - **Time** depends on how a pattern maps onto kernels: ISA, axial and windows are batches of dense
#   attentions but ISA and axial project twice (two hops); criss-cross and strided need masks and regroupings of
#   their affinities. Which cost wins depends on the map, and the rows say it for these sizes. Read a difference only
#   where the brackets of the two rows do not overlap, and only inside one kernel block: ccnet and strided run
#   the same explicit code in both blocks (`sdpa*`), so the gap between their two rows shows how far the
#   machine's load moved between the blocks.
#
# ## 6. The trade-offs
#
# - **Reach per hop.** ISA and criss-cross reach the whole map in two hops; dense in one. Windows never do in
#   a fixed number of layers on a growing map: they trade global context for linear cost and rely on depth and
#   down-sampling (Swin's hierarchy).
# - **How many paths.** In its two hops, ISA connects any two pixels through exactly one intermediate
#   position (the `via` of notebook 01, sometimes a padding position); two criss-cross layers connect two pixels
#   in different rows and columns through two (the other corners of their rectangle) — exercise 2 counts them.
#   Dense connects every pair directly.
# - **Cost growth.** Criss-cross and axial grow as $n^3$; ISA with a fixed `down_factor` as $n^4/k^2$; a
#   window as $n^2$. For the map sizes of segmentation heads (64–128) they are between about 0.4 % and 3 % of
#   dense (the shares printed under the growth plot).
# - **Kernels.** ISA, axial and windows reshape the map into batches of dense attentions, so every fast
#   attention kernel applies (notebook 03). Criss-cross and strided give each query its own key set, which
#   PyTorch's fused kernel does not take: here they are plain PyTorch, computed explicitly (their `sdpa` rows in
#   section 5).

# %% [markdown]
# ## 7. What a kernel computes
#
# A pattern says which scores are needed; a kernel decides which are *computed*. PyTorch's FlexAttention
# (`kernel="flex"`, `isanet/models/efficient/flex.py`) takes each pattern above as a `mask_mod` and cuts the
# $N' \times N'$ scores ($N' = HW$ tokens of the padded map) into tiles of `block_size` queries by `block_size` keys: it skips a tile only when the pattern allows
# none of its pairs. So what it saves depends on the order the pixels are listed in. The fewest tiles any order
# could compute is $\lceil \text{allowed pairs} / \text{block\_size}^2 \rceil$: "tiles needed".
#
# The orders: `row` (the map as stored), `group` (ISA's long-range groups one after the other: ISA's first
# permute), `block` (its blocks one after the other: the second permute) and `morton` (a Z-order curve, which
# keeps neighbours together).
#
# **Predict:** for ISA's *long-range* step (each pixel reads the pixels with its own offset in every block),
# which order skips the most tiles? Set `guess_order` before running the cell after it.

# %%
guess_order = None   # your guess: "row", "group", "block" or "morton"

# %%
import statistics

import torch

from isanet.analysis.measure import ratio_range, ratio_verdict, time_samples
from isanet.analysis.tiles import tile_view
from isanet.models.efficient import flex
from isanet.models.efficient.base import configure_flex
from isanet.models.efficient.flex import ORDERS, FlexOptions
from isanet.notebook.tile_plots import plot_tile_view

TILE_SIDE, TILE_FACTOR, BLOCK = (32, 4, 64) if quick else (64, 8, 128)
long_range = flex.SameOffset(TILE_FACTOR, TILE_FACTOR)
views = {order: tile_view(long_range, TILE_SIDE, TILE_SIDE, order, (TILE_FACTOR, TILE_FACTOR), BLOCK)
         for order in ORDERS}
for view in views.values():
    print(view.summary())
winner = max(views, key=lambda order: views[order].skipped_share)
print(check_guess(guess_order, winner, f"{views[winner].computed} of {views[winner].total} tiles computed in that order, "
                  f"{views[winner].needed} needed: the order that lists the pattern's partners together fills whole "
                  "tiles with allowed pairs."))

# %% [markdown]
# Read the lines above: each says how many tiles its order computes, out of how many, against how many any order
# needs. In `row` order a tile of queries is a few map rows, and their long-range keys lie in every block row,
# so key tiles that hold a single needed pair must be computed whole; `morton` keeps neighbours together, which
# does not help a pattern of far-apart pixels. Listed group by group, the partners sit together and the computed
# count comes down towards the needed one (how close, the `group` line says; with tiles larger than a group,
# a tile also holds pairs of two groups that are not needed). The same pixel, its tiles in both orders:

# %%
centre = (TILE_SIDE // 2 + 1, TILE_SIDE // 3)
for order in ("row", "group"):
    plot_tile_view(views[order], long_range, TILE_SIDE, TILE_SIDE, centre,
                   f"ISA long range, {TILE_SIDE}x{TILE_SIDE} map, down factor {TILE_FACTOR}, {BLOCK}-token tiles")

# %% [markdown]
# Left, the map seen from the query pixel (red star): dark, the keys it reads; orange, the keys whose scores its
# tile row computes and the pattern then masks (work done for nothing); light, the skipped ones. Right, the tile
# grid: light tiles skipped, orange tiles computed with masked pairs in them, teal tiles computed and fully used
# (computed / needed counts in the title), the pixel's tile row outlined. Compare the orange of the two
# orders: it is what ordering the tokens saves.
#
# Tiles are only a count. Measured, interleaved on this machine: flex in row order, flex in ISA's order, ISA's
# own reshape with `sdpa` (the package's grouped form; its default kernel is `matmul`) and dense `sdpa`. The fused flex kernel needs
# `torch.compile`, which costs seconds per new mask on a CPU; its compile time is reported apart. In QUICK
# mode the flex rows run PyTorch's eager reference path (exact, but it forms every score), so they only say
# that eager flex is no kernel to time.

# %%
side = TILE_SIDE
x = torch.randn(1, channels, side, side)
contenders = {"flex, row order": ("isa", "flex", "row"), "flex, ISA's order": ("isa", "flex", "group"),
              "ISA reshape + sdpa": ("isa", "sdpa", None), "dense sdpa": ("dense", "sdpa", None)}
calls, compile_s = {}, {}
with flex.compiled(not quick), torch.no_grad():
    for name, (method, kernel, order) in contenders.items():
        module = build_attention(method, channels, key_channels, kernel, TILE_FACTOR).eval()
        if order:
            configure_flex(module, FlexOptions(order, block_size=BLOCK))
            compile_s[name] = time_samples({name: lambda m=module: m(x)}, 1, 0)[name][0] / 1000  # first call
        calls[name] = lambda m=module: m(x)
    samples = time_samples(calls, repeats=3 if quick else 7, warmup=1)
times = {name: statistics.median(values) for name, values in samples.items()}
spreads = {name: (min(values), max(values)) for name, values in samples.items()}
print(f"{side}x{side} map, {channels} channels, {'eager flex (QUICK)' if quick else 'compiled flex'}; median "
      f"(min-max) of {len(samples['dense sdpa'])} interleaved calls:")
for name, elapsed in times.items():
    print(f"  {name:20s} {elapsed:8.1f} ms ({spreads[name][0]:.1f}-{spreads[name][1]:.1f})" +
          (f"   (first call {compile_s[name]:.1f} s)" if name in compile_s else ""))
low, high = ratio_range(spreads["flex, row order"], spreads["flex, ISA's order"])
row_over_group = times["flex, row order"] / times["flex, ISA's order"]
print(f"fastest median: {min(times, key=times.get)}; flex row order / flex ISA's order {row_over_group:.2f}x, "
      f"range {low:.2f}-{high:.2f}x: {ratio_verdict(low, high)}")

# %% [markdown]
# What to take away: the tiles a block-sparse kernel skips follow the order, but fewer tiles are not
# automatically less time: in the times above flex in ISA's order need not beat flex in row order (the last line
# says whether the range of their ratio lies above, below or across 1). ISA's permute *is* the order that
# makes its long-range step dense blocks, so ISA's reshape + a dense kernel computes no masked-out score, with no
# mask to evaluate (on a CPU `sdpa` still repeats $QK^\top$ once per value slice, section 5); on a CPU (torch 2.13) flex is inference only and pays a compile per mask. Its place
# is the patterns no reshape turns into dense blocks: criss-cross and strided (`isanet bench attention --kernels
# flex --orders row group block morton --methods ccnet strided`).

# %% [markdown]
# ## Summary
#
# - Every efficient attention here is dense attention with a boolean pattern before the softmax; the package's
#   modules equal that masked formula to float64 rounding (section 1 prints the gap).
# - Stacking layers multiplies patterns: $R^{(2)} = \mathcal{P}^{(2)} \mathcal{P}^{(1)}$.
# - ISA's layer is two hops (long range, then short range) and reaches the whole map; criss-cross needs two
#   layers for the same; axial is two hops too; windows stay local and need shifts and depth.
# - Reach can be put against accuracy: section 4 prints each head's reference-run mIoU on the context task beside
#   its reach, and reads from those numbers whether the ranking follows reach.
# - Costs: dense $(hw)^2$; criss-cross / axial $\approx hw(h+w)$; ISA $HW(Q_hQ_w + k^2)$; windows $HWk^2$ —
#   measured above on this machine, with the kernel each method can use.
# - A block-sparse kernel (FlexAttention) skips the tiles the pattern leaves empty, and which tiles those are
#   depends on the order of the pixels (section 7 counts them); skipped tiles are not by themselves less time.
#
# ## Exercises
#
# Four exercises, easy to hard. Each solution is a hidden code cell below its exercise (click the bar on the
# left of the cell, or the three dots, to show it); try first.
#
# 1. *(easy)* Without shifts, how far do windows get? Stack three *plain* window layers (no shift) and compute the
#    reach of `PIXEL`. Then alternate plain and shifted windows and find how many layers a corner pixel needs to
#    reach the whole `HEIGHT x WIDTH` map.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
plain = build_attention("window", 2, 1, size=SIZE, layer=1).reach(HEIGHT, WIDTH)
three_plain = compose([plain, plain, plain])
print(f"3 plain window layers: PIXEL reaches {int(three_plain[PIXEL[0] * WIDTH + PIXEL[1]].sum())} pixels "
      f"(its own window: plain windows never mix)")
shifted = build_attention("window", 2, 1, size=SIZE, layer=2).reach(HEIGHT, WIDTH)
reached, layers = plain, 1
while not reached[0].all() and layers < 100:  # row 0 of the reach matrix: the corner pixel (0, 0)
    reached = compose([reached, shifted if layers % 2 else plain])
    layers += 1
assert reached[0].all(), f"the corner has not reached the whole map after {layers} layers"
print(f"alternating plain/shifted windows of {SIZE}: the corner reaches all {HEIGHT}x{WIDTH} pixels after "
      f"{layers} layers")

# %% [markdown]
# 2. *(medium)* Count the paths. The product of two patterns as numbers counts the intermediate pixels:
#    $(\mathcal{P}^{(2)} \mathcal{P}^{(1)})_{ij}$ is the number of two-hop paths from $j$ to $i$. Count them for
#    criss-cross (two layers) and ISA (its two hops) between the corners $(0, 0)$ and $(h-1, w-1)$ of a 16 x 16
#    map with `down_factor` 4.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
side = 16
cross = build_attention("ccnet", 2, 1).reach(side, side).float()
isa_16 = build_attention("isa", 2, 1, size=4)
long_hop, short_hop = (hop.float() for hop in isa_16.hop_masks(side, side))
first, last = 0, side * side - 1
print(f"criss-cross, 2 layers: {int((cross @ cross)[last, first])} paths (via the two other corners)")
print(f"ISA, long then short range: {int((short_hop @ long_hop)[last, first])} path (16 is divisible by 4: "
      f"no padding)")

# %% [markdown]
# 3. *(medium)* Compare at **equal reach**: one ISA layer (`down_factor` 8) reaches the whole map, and criss-cross
#    needs **two** layers for that. Compare the `affinity_entries` of one ISA layer with those of two criss-cross
#    layers on `n x n` maps for every `n` from 8 to 256: from which side on, and up to which, does ISA need fewer,
#    and which sides in that range break the rule? (Hint: write both for `n` divisible by 8, then think of padding.)

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
cc, isa_8 = build_attention("ccnet", 2, 1), build_attention("isa", 2, 1, size=8)
two_cross = {n: 2 * cc.affinity_entries(n, n) for n in range(8, 257)}  # two layers: equal reach
one_isa = {n: isa_8.affinity_entries(n, n) for n in two_cross}
isa_fewer = [n for n in two_cross if one_isa[n] < two_cross[n]]
first, last = isa_fewer[0], isa_fewer[-1]
print(f"ISA needs fewer entries than two criss-cross layers on sides {first} to {last}, except "
      f"{[n for n in range(first, last + 1) if n not in isa_fewer]} (sides just above a multiple of 8: padding)")
divisible = [n for n in range(8, 257, 8) if one_isa[n] < two_cross[n]]
print(f"on sides divisible by 8: from {divisible[0]} to {divisible[-1]}, every one of them")
for n in range(8, 257, 8):  # n divisible by 8: 2 n^2 (2n) against n^2 (n^2/64 + 64)
    assert two_cross[n] - one_isa[n] == n * n * (4 * n - n * n // 64 - 64)
roots = [64 * (2 - 3 ** 0.5), 64 * (2 + 3 ** 0.5)]  # of n^2/64 - 4n + 64 = 0, i.e. n^2 - 256 n + 4096 = 0
print(f"two criss-cross - ISA = n^2 (4n - n^2/64 - 64) > 0 between the roots {roots[0]:.1f} and {roots[1]:.1f}")

# %% [markdown]
# 4. *(hard)* Make ISA's one layer one hop. Treat ISA's two hops as two separate "layers" and compute the reach of
#    `PIXEL` after the first hop alone; compare it with one criss-cross layer and one strided layer on the same
#    map. Which single hop reads the most pixels?

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
isa_hops = build_attention("isa", 2, 1, size=SIZE)
first_hop = isa_hops.hop_masks(HEIGHT, WIDTH)[0]  # over the padded map
left, right, top, bottom = isa_hops.padding(HEIGHT, WIDTH)
padded_w = left + WIDTH + right
real = [(row + top) * padded_w + col + left for row in range(HEIGHT) for col in range(WIDTH)]  # padded index
read = first_hop[real[PIXEL[0] * WIDTH + PIXEL[1]]]  # PIXEL's row of hop 1, over the padded map
counts = {"ISA hop 1 (long range)": int(read[real].sum())}  # real pixels only, as the others count
print(f"ISA hop 1 reads {int(read.sum())} positions of the padded map, {counts['ISA hop 1 (long range)']} of them "
      "real pixels")
for method in ("ccnet", "strided"):
    one = reach(method, HEIGHT, WIDTH, SIZE, layers=1)
    counts[f"{method}, one layer"] = int(one[PIXEL[0] * WIDTH + PIXEL[1]].sum())
print(", ".join(f"{name}: {count} pixels" for name, count in counts.items()))
most = max(counts.values())
print(f"the single hop that reads the most real pixels of PIXEL's {HEIGHT}x{WIDTH} map: "
      f"{' and '.join(name for name, count in counts.items() if count == most)} ({most})")

# %% [markdown]
# ## Further reading
#
# - Wang et al., *Non-local Neural Networks*, CVPR 2018 — arXiv:[1711.07971](https://arxiv.org/abs/1711.07971)
# - Huang et al., *CCNet: Criss-Cross Attention for Semantic Segmentation*, ICCV 2019 —
#   arXiv:[1811.11721](https://arxiv.org/abs/1811.11721)
# - Ho et al., *Axial Attention in Multidimensional Transformers*, 2019 —
#   arXiv:[1912.12180](https://arxiv.org/abs/1912.12180)
# - Child et al., *Generating Long Sequences with Sparse Transformers*, 2019 —
#   arXiv:[1904.10509](https://arxiv.org/abs/1904.10509)
# - Liu et al., *Swin Transformer: Hierarchical Vision Transformer using Shifted Windows*, ICCV 2021 —
#   arXiv:[2103.14030](https://arxiv.org/abs/2103.14030)
# - Huang et al., *Interlaced Sparse Self-Attention for Semantic Segmentation*, 2019 —
#   arXiv:[1907.12273](https://arxiv.org/abs/1907.12273)
#
# The modules: `isanet/models/efficient/{base,isa_module,criss_cross,axial,window,strided,registry}.py`; the bench:
# `isanet bench attention --methods dense isa ccnet axial window strided`.
