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
# # 07 · Misconception quiz: what ISA is, and what it is not
#
# **Goal:** test what notebooks 01–06 taught against the beliefs that most often survive a first reading. Each
# question is a statement to judge *true* or *false*; write your answer into its `answer_N` variable, then unfold
# the cell under it: the cell measures the statement on a small example, derives the answer from what it
# measured, and says why. Some statements are true, some false: no constant answer scores full marks.
#
# **You will learn**
#
# - to tell reach (every pixel reaches every other in two hops) from expressiveness (the rank of the composed
#   map) and from influence (what a pixel changes in the output);
# - what a fused kernel saves (memory) and what it does not (FLOPs), and where ISA stops being cheaper;
# - why padding takes part in ISA's attention, and why the order of the two steps does not change its reach;
# - not to read meaning into an untrained model's bright spots.
#
# **Prerequisites:** notebooks 01, 03 and 06. Everything runs on a CPU in seconds; no data or weights needed.
# The questions are this notebook's exercises; their answers are collapsed under them.
#
# **Notation:** every letter used in notebooks 01–07 is on one card, [notation.md](notation.md).

# %% tags=["parameters"]
# Parameters — your answers ("true" or "false"; None: just show the answers), and where to measure.
answer_1 = None   # "two hops reach every pixel, so ISA is dense attention"
answer_2 = None   # "a fused kernel closes most of the memory gap, not the FLOP gap"
answer_3 = None   # "bright spots in an untrained model's attention map mean something"
answer_4 = None   # "the composed map A_S A_L is how much each pixel influences the output"
answer_5 = None   # "padded positions take part in the attention like pixels"
answer_6 = None   # "ISA is cheaper than dense attention on every map"
answer_7 = None   # "one ISA layer reaches the whole map, one criss-cross layer does not"
answer_8 = None   # "in either order, the two steps reach every pixel"
answer_9 = None   # "the published down_factor 8 is the cheapest for a 128 x 128 map"
DEVICE = "cpu"    # where question 2 measures: "cpu", "cuda" or "auto"

# %% [markdown]
# ## Set-up

# %%
import torch

from isanet.analysis.attention_bench import bench_attention
from isanet.analysis.cost import attention_cost, break_even_side
from isanet.analysis.influence import influence_vs_rollout
from isanet.analysis.isa_matrices import attention_matrices, long_range_mask, short_range_mask
from isanet.analysis.reach import reach_table
from isanet.data.sample_checkpoint import random_state_dict
from isanet.models.efficient.base import DenseAttention
from isanet.models.efficient.isa_module import ISAModule
from isanet.models.isa import Partition
from isanet.notebook.quiz import check_guess, verdict
from isanet.notebook.session import configure_torch

device = configure_torch(DEVICE, quick=True)


def seeded(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with seeded random weights, in eval mode and float64 (untrained: only structure is tested)."""
    module.load_state_dict(random_state_dict(module, seed=0))
    return module.eval().double()


x = torch.randn(1, 16, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))  # a small map
isa = seeded(ISAModule(16, 8, (3, 3)))  # 6 x 6 map, 3 x 3 blocks: no padding
print(f"a {tuple(x.shape)} map; ISA with 3 x 3 blocks and random weights")

# %% [markdown]
# ### Q1. "Two hops reach every pixel, so ISA is dense attention."
#
# Hint: take the rows of the composed map $A_SA_L$ of the pixels of one block, restricted to the columns of one
# long-range group. How many independent rows can that small matrix have?

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["answer"]
with torch.no_grad():
    a_long, a_short = attention_matrices(isa.forward_with_attention(x).attention)
    a_dense = seeded(DenseAttention(16, 8)).relation.forward_with_attention(x).weights[0]
composed = a_short @ a_long
block, group = short_range_mask(Partition(6, 6, 3, 3))[0], long_range_mask(Partition(6, 6, 3, 3))[0]
ranks = {name: int(torch.linalg.matrix_rank(matrix[block][:, group])) for name, matrix in
         (("ISA composed", composed), ("dense", a_dense))}
print(f"one block's 9 rows on one long-range group's 4 columns: rank {ranks}; every composed entry > 0: "
      f"{bool((composed > 0).all())}")
print(check_guess(answer_1, verdict(ranks["ISA composed"] == ranks["dense"]), "every pair is reached, but the 9 rows of a block are rescalings of one shared "
                  "long-range row on each group (rank 1); dense rows are free (full rank)."))

# %% [markdown]
# ### Q2. "A fused kernel (`sdpa`) closes most of the memory gap between dense attention and ISA, but not the FLOP gap."
#
# Hint: a fused kernel never stores the $N \times N$ affinity. Does it also skip computing it?

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["answer"]
rows = bench_attention([(32, 32)], channels=64, isa_channels=32, kernels=("matmul", "sdpa"), device=device,
                       repeats=1, warmup=0)
by_kernel = {(row.kernel, row.method): row for row in rows}
memory, flops = {}, {}
for kernel in ("matmul", "sdpa"):
    dense_row, isa_row = by_kernel[kernel, "dense"], by_kernel[kernel, "isa"]
    memory[kernel] = dense_row.peak_memory_bytes / isa_row.peak_memory_bytes
    flops[kernel] = dense_row.flops / isa_row.flops
    print(f"32 x 32 map, {kernel:>6}: dense/ISA peak memory {memory[kernel]:.2f}x, FLOPs {flops[kernel]:.2f}x")
gap_left = abs(memory["sdpa"] - 1) / (memory["matmul"] - 1)  # the share of matmul's memory gap sdpa leaves
print(f"sdpa leaves {gap_left:.0%} of matmul's memory gap; its FLOP ratio stays {flops['sdpa']:.2f}x")
print(check_guess(answer_2, verdict(gap_left < 0.5 and flops["sdpa"] > 1), "the fused kernel removes most of the *memory* gap "
                  "(it never stores the affinity) but not the FLOP gap: dense still forms every (query, key) pair. "
                  "Notebook 03 measures both, and the training memory too."))

# %% [markdown]
# ### Q3. "Bright spots in an untrained model's attention map mean something."
#
# Hint: a picture scales its colours to the row's own maximum. How far from uniform is a random model's row?

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["answer"]
long_rows = a_long[long_range_mask(Partition(6, 6, 3, 3))].view(36, 4)  # each pixel's 4 long-range weights
entropy = -(long_rows * long_rows.log()).sum(1) / torch.log(torch.tensor(4.0, dtype=torch.float64))
peak = float((long_rows.max(1).values * 4).max())  # the brightest spot, as a multiple of the uniform weight
print(f"random weights: row entropy {entropy.min():.3f} to {entropy.max():.3f} of the uniform row's (1 = uniform);"
      f" the largest weight in a row is up to {peak:.2f}x the uniform 1/4")
print(check_guess(answer_3, verdict(peak < 1.5), "weights that learnt nothing already put up to "
                  f"{peak:.1f}x the uniform weight on one pixel, and a colour map stretched to each row's maximum "
                  "shows that pixel as a bright spot. Only a measured preference against a baseline (notebook 02's "
                  "cue lift, random weights beside it) means something."))

# %% [markdown]
# ### Q4. "The composed map $A_SA_L$ is how much each pixel influences the output."
#
# Hint: the module's output at $p$ also depends on $r$ through the weights themselves, and through a ReLU.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["answer"]
measured = influence_vs_rollout(isa, x)
print(f"correlation of the Jacobian influence ||dy_p/dx_r|| with the rollout A_S A_L: {measured.correlation:.2f}")
print(check_guess(answer_4, verdict(measured.correlation > 0.99), "the rollout is the weights only; the measured influence of the real module "
                  "(isanet.analysis.influence) is related to it but not equal (a correlation below 1)."))

# %% [markdown]
# ### Q5. "Padded positions take part in the attention like any pixel: no mask keeps them out."
#
# Hint: ISA pads the map with zeros *before* the projections. What weight does a real pixel give a padded one?

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["answer"]
padded_isa = seeded(ISAModule(16, 8, (4, 4)))
with torch.no_grad():
    weights = padded_isa.forward_with_attention(x).attention  # 6 x 6 padded to 8 x 8: a border of padding
a_long_padded, _ = attention_matrices(weights)
grid = weights.partition
real = torch.zeros(grid.padded_h, grid.padded_w, dtype=torch.bool)
real[grid.pad_top:grid.pad_top + grid.height, grid.pad_left:grid.pad_left + grid.width] = True
to_padding = a_long_padded[real.flatten()][:, ~real.flatten()].sum(1)  # weight each real pixel puts on padding
print(f"6 x 6 map padded to {grid.padded_h} x {grid.padded_w}: real pixels put {to_padding.min():.1%} to "
      f"{to_padding.max():.1%} of their long-range weight on padded positions (0% where a long-range group has no padded member)")
print(check_guess(answer_5, verdict(bool(to_padding.max() > 0)), "mmseg's ISA (and this kit, which matches it) pads "
                  "with zeros and attends over the padded positions like any pixel; no mask is applied."))

# %% [markdown]
# ### Q6. "ISA is cheaper than dense attention on every map."
#
# Hint: ISA runs its projections twice.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["answer"]
small_cost = {method: attention_cost(method, 16, 16).total for method in ("dense", "isa")}
print(f"16 x 16, C = 512, d = 256: dense {small_cost['dense'] / 1e9:.2f} GFLOPs, ISA {small_cost['isa'] / 1e9:.2f};"
      f" ISA is cheaper on every side from {break_even_side()} on")
print(check_guess(answer_6, verdict(small_cost["isa"] < small_cost["dense"]), "on small maps the doubled projections cost more than the pairs ISA saves "
                  "(notebook 03's break-even side)."))

# %% [markdown]
# ### Q7. "One ISA layer reaches the whole map; one criss-cross layer does not."
#
# Hint: count hops, not layers.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["answer"]
table = {row.method: row for row in reach_table(12, 12, 4, methods=("isa", "ccnet"))}
for method, row in table.items():
    print(f"{method}: {row.hops_per_layer} hop(s) per layer; reach after 1 layer {row.reach_1:.0%}, after 2 "
          f"{row.reach_2:.0%}")
print(check_guess(answer_7, verdict(table["isa"].reach_1 == 1 > table["ccnet"].reach_1), "an ISA layer is two hops and reaches the whole map; one criss-cross hop reaches "
                  "its row and column, and needs a second layer (notebook 06 compares them at equal reach)."))

# %% [markdown]
# ### Q8. "Long range first or short range first: either way, every pixel reaches every other in two hops."
#
# Hint: compare $SL$ with $LS$.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["answer"]
odd = Partition(13, 18, 4, 4)
long_odd, short_odd = long_range_mask(odd).long(), short_range_mask(odd).long()
products = {"S L (long range first)": short_odd @ long_odd, "L S (short range first)": long_odd @ short_odd}
for name, product in products.items():
    print(f"{name}: entries from {int(product.min())} to {int(product.max())}")
print(check_guess(answer_8, verdict(all(int(product.min()) >= 1 for product in products.values())), "both products are all ones: a block and a long-range group share exactly one "
                  "position, in either order. The order changes which pixel is the via, not the reach."))

# %% [markdown]
# ### Q9. "The published `down_factor` 8 is the cheapest for a 128 x 128 map."
#
# Hint: the unpadded optimum is $P = \sqrt{128} \approx 11.3$; padding moves it.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["answer"]
entries = {f: Partition(128, 128, f, f).affinity_entries()[1] for f in range(2, 33)}
cheapest = [f for f in entries if entries[f] == min(entries.values())]
print(f"fewest affinity entries at down_factor {cheapest}; 8 costs {entries[8] / min(entries.values()) - 1:.0%} more")
print(check_guess(answer_9, verdict(8 in cheapest), "10 and 13 tie for the fewest affinity entries (notebook 01, section 7); 8 pads "
                  "nothing and is close. In FLOPs, with the projections, the answer differs again (notebook 03, "
                  "exercise 3)."))

# %% [markdown]
# ## Summary
#
# - Reach is not expressiveness: two hops reach every pixel, but a block's rows of the composed map are rescalings
#   of shared rows (Q1), and the composed map is the weights' flow, not a pixel's influence on the output (Q4).
# - A fused kernel saves the memory of the affinity, not its FLOPs (Q2); ISA's doubled projections make it dearer
#   than dense attention on small maps (Q6), and the cheapest `down_factor` depends on the padding (Q9).
# - Padding takes part in the attention (Q5); the order of the steps changes the via, not the reach (Q8); one ISA
#   layer reaches what one criss-cross layer cannot (Q7).
# - An untrained row has bright spots too (Q3): compare with a baseline before reading a map.
#
# ## Further reading
#
# - Huang et al., *Interlaced Sparse Self-Attention for Semantic Segmentation*,
#   [arXiv:1907.12273](https://arxiv.org/abs/1907.12273).
# - Abnar & Zuidema, *Quantifying Attention Flow in Transformers* (attention rollout and what it is not),
#   [arXiv:2005.00928](https://arxiv.org/abs/2005.00928).
# - Jain & Wallace, *Attention is not Explanation*, [arXiv:1902.10186](https://arxiv.org/abs/1902.10186).
