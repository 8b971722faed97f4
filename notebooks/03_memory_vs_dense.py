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
# # 03 · Memory, FLOPs and time: ISA vs dense self-attention, on your device
#
# **Goal:** predict with a formula what interlaced sparse attention (ISA) saves against dense self-attention
# with the *same* projections, then measure peak memory, FLOPs and wall time on your device and explain every
# number: where the formula and the measurement agree, and why they sometimes do not.
#
# **You will learn**
# - the cost of dense attention and of ISA in FLOPs, *with* the channel terms of the projections that ISA runs
#   twice, and the map size from which ISA is cheaper;
# - why a fused attention kernel (`sdpa`) closes the memory gap between dense and ISA but not the FLOP and time
#   gap;
# - what autograd keeps for the backward pass, and what that does to dense attention's *training* memory;
# - how the authors' released script measures efficiency (the protocol followed here), and why in their
#   setting the 3x3 input convolution, not the attention, dominates the cost of the ISA head.
#
# **Prerequisites:** notebook 01 (blocks, long-range groups, `down_factor`, padding); scaled dot-product
# attention; what a FLOP and a peak of allocated memory are.
#
# **Notation:** every letter used in notebooks 01–07 is on one card, [notation.md](notation.md).

# %% [markdown]
# ## The formulas
#
# **Notation.** A feature map of $h \times w$ pixels (`height`, `width`), $N = hw$, with $C$ channels
# (`channels`, 512 in ISANet) and keys/queries of width $d$ (`isa_channels`, 256). ISA pads the map to
# $H \times W$ ($N' = HW$) and cuts it into $Q_h \times Q_w$ blocks (`glb_h, glb_w`) of $P_h \times P_w$ pixels
# (`down_factor = (loc_h, loc_w)`, 8 x 8). The paper's $Q_h, Q_w$ are block *counts*; below, $Q$ alone is the
# query matrix of attention (the clash of letters is the paper's).
#
# **Dense attention** (one `SelfAttentionBlock` over the whole map): with queries $Q = \phi_q(X)$ and keys
# $K = \phi_k(X)$ in $\mathbb{R}^{N \times d}$ and values $V = \phi_v(X) \in \mathbb{R}^{N \times C}$,
#
# $$\mathrm{Attn}(X) = \phi_o\!\left(\mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d}}\right) V\right).$$
#
# **ISA** runs the same block twice: once inside each of the $P_hP_w$ long-range groups of $Q_hQ_w$ pixels,
# then inside each of the $Q_hQ_w$ blocks of $P_hP_w$ pixels.
#
# **FLOPs** (a multiply-add is 2 FLOPs). Each block pays its projections per pixel —
# $\phi_q, \phi_k$: $C \to d \to d$, $\phi_v$: $C \to C$, $\phi_o$: $C \to C$ —
# $\pi = 2\,[\,2(Cd + d^2) + 2C^2\,]$, and every (query, key) pair it forms costs $2(d + C)$ ($QK^\top$ and the
# weighted sum of values):
#
# $$F_\text{dense} = N\pi + 2N^2(d + C), \qquad
#   F_\text{ISA} = 2N'\pi + 2N'\,(Q_hQ_w + P_hP_w)\,(d + C).$$
#
# The paper's complexities are the pair terms, $O(N^2C)$ against $O(N(P_hP_w + Q_hQ_w)C)$. The projection
# terms are what it leaves out: ISA pays $\pi$ twice per pixel, so on a small map it costs *more* than dense
# attention. When the blocks tile the map without padding ($P_h \mid h$ and $P_w \mid w$, so $N' = N$ and
# $Q_hQ_w = N / P_hP_w$) ISA is cheaper exactly when
#
# $$N\left(1 - \frac{1}{P_hP_w}\right) 2(d+C) \;>\; \pi + P_hP_w\, 2(d+C).$$
#
# `isanet.analysis.cost.attention_cost` computes both sums; its test checks them against
# `torch.utils.flop_counter` on the real modules, digit for digit.

# %% tags=["parameters"]
# Parameters. None picks a default for the device: small and quick on a CPU, the paper's sizes on a GPU.
DEVICE = "auto"           # "cpu", "cuda" or "auto"
THREADS = None            # CPU threads; None: 1 under a test runner (steady on busy shared CPUs), else the default
SIZES = None              # feature-map sides to measure; None: [16, 24, 32, 48] on a CPU, [32, 64, 96, 128] on a GPU
CHANNELS = None           # channels of the map; None: 256 on a CPU (quick), 512 on a GPU (the paper's)
ISA_CHANNELS = None       # key/query channels; None: CHANNELS // 2 (the paper: 256 for 512)
DOWN_FACTOR = 8           # (loc_h, loc_w) = (8, 8), as in every published model
KERNELS = ("matmul", "sdpa")
REPEATS = 3               # timed calls per row (after one warm-up call)
MEMORY_CAP_GB = 4         # CPU: a row that would need more live memory is reported as "oom" instead of run
PAPER_SETTING = "auto"    # also run the authors' script setting (2048x128x128 input): True, False, "auto" = on a GPU

# %% [markdown]
# ## Set-up

# %%
# %matplotlib inline
import time

import torch
from IPython.display import display

from isanet.analysis.attention_bench import (
    PAPER_CHANNELS,
    PAPER_IN_CHANNELS,
    PAPER_ISA_CHANNELS,
    PAPER_SIZE,
    attention_module,
    bench_attention,
    format_ratios,
    format_rows,
)
from isanet.analysis.cost import (
    attention_cost,
    break_even_estimate,
    break_even_side,
    projection_flops_per_pixel,
)
from isanet.analysis.measure import count_module_flops, ratio_range, ratio_verdict
from isanet.models.isa import Partition
from isanet.models.layers import ConvBNReLU
from isanet.notebook.plots import plot_bench
from isanet.notebook.quiz import check_guess
from isanet.notebook.session import configure_torch

device = configure_torch(DEVICE, THREADS)
on_gpu = device.startswith("cuda")
sizes = SIZES or ([32, 64, 96, 128] if on_gpu else [16, 24, 32, 48])
channels = CHANNELS or (512 if on_gpu else 256)
isa_channels = ISA_CHANNELS or channels // 2
factor = (DOWN_FACTOR, DOWN_FACTOR)
run_paper = on_gpu if PAPER_SETTING == "auto" else bool(PAPER_SETTING)
name = torch.cuda.get_device_name(device) if on_gpu else f"CPU, {torch.get_num_threads()} threads"
print(f"device: {device} ({name}); sizes {sizes}, {channels} channels, key/query {isa_channels}, "
      f"down_factor {DOWN_FACTOR}")
if not on_gpu:
    print("CPU RUN with small sizes and channels (quick). Memory and FLOPs are exact; times on a shared CPU are "
          "noisy. On a GPU the notebook measures the paper's sizes.")

# %% [markdown]
# ## 1. Predict: the formula, filled in
#
# Before measuring anything, the formula says how many FLOPs each method needs at each size, split into
# projections and pair (affinity) work, and from which side $n$ an $n \times n$ map is cheaper with ISA.

# %%
print(f"{'size':>7} {'dense proj':>11} {'dense pairs':>12} {'ISA proj':>9} {'ISA pairs':>10} {'dense/ISA':>10}"
      "   (GFLOPs)")
for n in sizes:
    dense, isa = (attention_cost(method, n, n, channels, isa_channels, factor) for method in ("dense", "isa"))
    print(f"{n:>3}x{n:<3} {dense.projections / 1e9:>11.3f} {dense.affinity / 1e9:>12.3f} "
          f"{isa.projections / 1e9:>9.3f} {isa.affinity / 1e9:>10.3f} {dense.total / isa.total:>9.2f}x")
for c, d, label in ((channels, isa_channels, "this run"), (PAPER_CHANNELS, PAPER_ISA_CHANNELS, "ISANet")):
    print(f"{label} (C={c}, d={d}, {DOWN_FACTOR}x{DOWN_FACTOR} blocks): ISA needs fewer FLOPs on n x n maps "
          f"from n = {break_even_side(c, d, factor)} on; on sides that {DOWN_FACTOR} divides, from "
          f"n = {break_even_estimate(c, d, factor):.1f} (the inequality above)")

# %% [markdown]
# Read the table from left to right: the projections grow like $n^2$ for both methods (and are twice as large for
# ISA), the dense pair work grows like $n^4$ and soon dwarfs everything else, while ISA's pair work stays a small
# fraction of its projections. Where the last column is below 1x, ISA pays more than it saves. The two sides
# printed under the table say where that ends: the first is the side from which *every* side is cheaper with ISA,
# padded or not; the second solves the inequality for sides the block divides, and the table's sides are all such
# sides, so its last column crosses 1x there. The first is larger because of padding: a side just above a multiple
# of the block side is padded up to the next one, and ISA pays for the padded pixels too.

# %% [markdown]
# ## 2. Measure
#
# Every size x kernel x method, in one run on one device, on the same random input; dense and ISA are timed
# interleaved, so load from other processes falls on both alike. **Memory** is the peak of live tensor bytes
# during the call (CUDA: `max_memory_allocated`; CPU: an exact tensor-allocation tracker); **FLOPs** are counted
# by `torch.utils.flop_counter` during the same call; **time** is the median of `REPEATS` calls.

# %%
started = time.perf_counter()
rows = bench_attention([(n, n) for n in sizes], channels=channels, isa_channels=isa_channels,
                       down_factor=factor, kernels=KERNELS, device=device, repeats=REPEATS,
                       warmup=1, memory_cap_bytes=int(MEMORY_CAP_GB * 2**30) if MEMORY_CAP_GB else None)
print(f"measured {len(rows)} rows in {time.perf_counter() - started:.1f} s on {device}\n")
print(format_rows(rows))
print()
print(format_ratios(rows))
display(plot_bench(rows))
by_key = {(row.method, row.kernel, row.height): row for row in rows}

# %% [markdown]
# The ratios are dense / ISA: above 1x, ISA is cheaper. The next three sections read these numbers one column
# at a time.
#
# ## 3. FLOPs: the formula against the counter
#
# For the `matmul` kernel the counted FLOPs must equal the formula exactly. The fused `sdpa` kernel is counted
# too; on a CPU it can count more, because the only fused CPU kernel wants values as wide as keys, so the
# package splits the $C$ value channels into $C/d$ heads that share one $QK^\top$ — computed once per head
# (`isanet.models.attention.fused_attention`).

# %%
for kernel in KERNELS:
    for n in sizes:
        dense, isa = by_key.get(("dense", kernel, n)), by_key.get(("isa", kernel, n))
        if dense is None or isa is None or dense.flops is None or isa.flops is None:  # not run (e.g. "oom")
            continue
        formula = [attention_cost(m, n, n, channels, isa_channels, factor).total for m in ("dense", "isa")]
        same = "= formula" if [dense.flops, isa.flops] == formula else (
            f"formula {formula[0] / 1e9:.3f} / {formula[1] / 1e9:.3f}")
        side = "ISA cheaper" if formula[1] < formula[0] else "dense cheaper or equal"
        print(f"[{kernel:>6}] {n:>3}x{n:<3} counted dense {dense.flops / 1e9:.3f}, ISA {isa.flops / 1e9:.3f} GFLOPs "
              f"({same}); ratio {dense.flops / isa.flops:.2f}x; formula side: {side}")
estimate = break_even_estimate(channels, isa_channels, factor)
counted = {n: by_key["dense", "matmul", n].flops / by_key["isa", "matmul", n].flops for n in sizes
           if all(by_key.get((m, "matmul", n)) and by_key[m, "matmul", n].flops for m in ("dense", "isa"))}
below = [n for n in counted if counted[n] < 1]
above = [n for n in counted if counted[n] > 1]
predicted = [n for n in counted if attention_cost("isa", n, n, channels, isa_channels, factor).total
             < attention_cost("dense", n, n, channels, isa_channels, factor).total]
print(f"\nformula: on sides that {DOWN_FACTOR} divides, ISA is cheaper from n = {estimate:.1f}; with padding, on "
      f"every side from n = {break_even_side(channels, isa_channels, factor)}")
print(f"formula, sides measured here where ISA is cheaper: {predicted}; counted (matmul): dense/ISA < 1 at {below}, "
      f"> 1 at {above}")
assert above == predicted, "the counted FLOPs put the crossing elsewhere than the formula"
print("-> the counted crossing is where the formula puts it")

# %% [markdown]
# The `matmul` lines say `= formula`: the counter and the closed form agree to the FLOP, so the formula of the first
# section is the whole story of the arithmetic. The last lines set the predicted crossing next to the counted one:
# the sides where the formula makes ISA cheaper are exactly those where the counted ratio is above 1 (the cell
# asserts it), and the printed break-even sides say where that begins for any size. Where the `sdpa` lines differ from
# the formula on a CPU, the difference is the extra $QK^\top$ of the value heads (a device whose fused kernel takes
# values as wide as $C$ would not need them; run the notebook there to see its count).
#
# ## 4. Memory: why a fused kernel closes the gap
#
# With `matmul` the dense block stores its $N \times N$ affinity (the scores, then the softmax of them): at the
# peak, memory grows like $N^2$. A fused kernel (`sdpa`) computes the same softmax in tiles and never stores
# it, so dense attention then needs memory of the order of its projections, $O(NC)$ — as ISA does. The cell
# puts the size of one dense affinity next to what the fused kernel saved.
#
# **Predict:** with `sdpa`, at the largest measured size, how many times ISA's peak memory does dense attention
# need (the dense/ISA ratio)? Set `guess_sdpa_memory`, then run the cell after it.

# %%
guess_sdpa_memory = None  # your guess: dense/ISA peak memory with the fused kernel, largest size

# %%
for n in sizes:
    dense_mm, dense_fused = by_key.get(("dense", "matmul", n)), by_key.get(("dense", "sdpa", n))
    isa_mm, isa_fused = by_key.get(("isa", "matmul", n)), by_key.get(("isa", "sdpa", n))
    if not all(row and row.peak_memory_bytes for row in (dense_mm, dense_fused, isa_mm, isa_fused)):
        continue
    affinity = (n * n) ** 2 * 4
    saved = dense_mm.peak_memory_bytes - dense_fused.peak_memory_bytes
    print(f"{n:>3}x{n:<3} one dense affinity {affinity / 2**20:6.2f} MiB; fused saved {saved / 2**20:6.2f} MiB "
          f"({saved / affinity:.1f} affinities); memory dense/ISA: matmul "
          f"{dense_mm.peak_memory_bytes / isa_mm.peak_memory_bytes:.2f}x, sdpa "
          f"{dense_fused.peak_memory_bytes / isa_fused.peak_memory_bytes:.2f}x")
fused_ratios = [by_key["dense", "sdpa", n].peak_memory_bytes / by_key["isa", "sdpa", n].peak_memory_bytes
                for n in sizes if by_key.get(("dense", "sdpa", n)) and by_key.get(("isa", "sdpa", n))
                and by_key["dense", "sdpa", n].peak_memory_bytes and by_key["isa", "sdpa", n].peak_memory_bytes]
if fused_ratios:
    print(f"\nsdpa memory dense/ISA over all sizes: {min(fused_ratios):.2f}x to {max(fused_ratios):.2f}x")
    left = "none here: the peaks are equal" if abs(fused_ratios[-1] - 1) < 0.005 else f"{fused_ratios[-1]:.2f}x here"
    print(check_guess(guess_sdpa_memory, round(fused_ratios[-1], 2),
                      "a fused kernel keeps no N x N affinity, so both peaks are made of N x C projections; what is "
                      f"left of the gap ({left}) is ISA's regrouping copies against dense's tiles.", tolerance=0.25))

# %% [markdown]
# Read the last two columns together. With `matmul` the dense/ISA memory ratio grows with the map, because the dense
# peak holds affinity-sized tensors (the "affinities" column says how many of them the fused kernel did without: the
# scores and their softmax can be alive at once; on the smallest maps the number can be negative, when the fused
# path's own buffers outweigh a tiny affinity). With `sdpa` read the range printed last: where it is close to 1x,
# neither method stores an affinity any more and both peaks are made of $N \times C$ projections. So the memory
# argument for ISA is an argument against *materialised* attention; a fused dense kernel wins most of it back.
#
# ## 5. Time: the FLOPs stay
#
# A fused kernel changes where the scores live, not how many multiply-adds produce them: dense attention still
# forms all $N^2$ pairs. Put the time ratios next to the FLOP ratios for each kernel. Each time is the median of
# `REPEATS` interleaved calls; beside each ratio, its range over the repeats (fastest dense over slowest ISA to
# slowest over fastest) says how much one run can say: a ratio whose range spans 1 says nothing about which is
# faster, and two sizes whose ranges overlap say nothing about a trend.

# %%
for kernel in KERNELS:
    for n in sizes:
        dense, isa = by_key.get(("dense", kernel, n)), by_key.get(("isa", kernel, n))
        if dense is None or isa is None or not (dense.time_ms and isa.time_ms):
            continue
        low, high = ratio_range(dense.time_range_ms, isa.time_range_ms)
        print(f"[{kernel:>6}] {n:>3}x{n:<3} time dense/ISA {dense.time_ms / isa.time_ms:5.2f}x (range {low:.2f}-"
              f"{high:.2f}x; {dense.time_ms:7.1f} vs {isa.time_ms:6.1f} ms), FLOPs dense/ISA "
              f"{dense.flops / isa.flops:5.2f}x")
largest = max(sizes)
fused = {m: by_key.get((m, "sdpa", largest)) for m in ("dense", "isa")}
if all(row and row.time_ms and row.peak_memory_bytes for row in fused.values()):
    memory_ratio = fused["dense"].peak_memory_bytes / fused["isa"].peak_memory_bytes
    time_ratio = fused["dense"].time_ms / fused["isa"].time_ms
    low, high = ratio_range(fused["dense"].time_range_ms, fused["isa"].time_range_ms)
    print(f"\nsdpa at {largest}x{largest}: memory dense/ISA {memory_ratio:.2f}x, time dense/ISA {time_ratio:.2f}x "
          f"(range {low:.2f}-{high:.2f}x: {ratio_verdict(low, high)}), FLOPs dense/ISA "
          f"{fused['dense'].flops / fused['isa'].flops:.2f}x")

# %% [markdown]
# The last line reads the largest map. Where the time ratio's range lies above 1 while the memory ratio is about
# 1x, the fused kernel saved memory, not arithmetic — the FLOP ratio, and with it the time, still favours ISA.
# Where it lies below 1, the overheads below outweighed ISA's FLOP saving at that size on this device; where it
# spans 1, this run cannot tell (more `REPEATS`, or a quieter machine, narrow it).
# Time ratios need not equal FLOP ratios: small matrices run below the machine's peak speed, ISA launches more,
# smaller kernels and copies the map twice to regroup it, and on a shared CPU a single run is noisy (the bench
# interleaves the two methods so that the noise falls on both). The smallest maps are where these overheads weigh
# most.

# %% [markdown]
# ## 5b. Training: what autograd keeps
#
# Everything so far ran under `torch.no_grad()`, as inference does. Training adds a backward pass, and to run it
# autograd **keeps** tensors of the forward pass: for explicit attention, the softmax output $A$ ($N \times N$ per
# image: the backward of $AV$ needs it, and so does the backward of the softmax itself), next to $Q$, $K$, $V$ and
# the projections' inputs. A fused kernel keeps only its output and a log-sum-exp per row, and **recomputes** the
# scores in its backward pass (more FLOPs, no $N^2$ memory). `bench_attention(..., backward=True)` measures one
# forward + backward step (the sum of the output as the loss, parameter gradients included) with the same
# trackers as section 2.
#
# **Predict:** at the largest size, with `matmul`, how many $N \times N$ float32 affinities' worth of memory does
# dense attention's training step need *beyond* its inference peak? Set `guess_kept_affinities`, then run.

# %%
guess_kept_affinities = None  # your guess: (training peak - inference peak) / one affinity, dense matmul, largest

# %%
started = time.perf_counter()
train_rows = bench_attention([(n, n) for n in sizes], channels=channels, isa_channels=isa_channels,
                             down_factor=factor, kernels=KERNELS, device=device, backward=True, repeats=REPEATS,
                             warmup=1, memory_cap_bytes=int(MEMORY_CAP_GB * 2**30) if MEMORY_CAP_GB else None)
print(f"forward + backward: {len(train_rows)} rows in {time.perf_counter() - started:.1f} s on {device}\n")
print(format_rows(train_rows))
train = {(row.method, row.kernel, row.height): row for row in train_rows}
print(f"\n{'size':>7} {'kernel':>7} {'affinity':>9} {'dense: train - eval':>20} {'ISA: train - eval':>18} "
      f"{'train dense/ISA':>16}   (MiB; the last column: ratio of the training peaks)")
for n in sizes:
    affinity = (n * n) ** 2 * 4
    for kernel in KERNELS:
        pairs = [(train.get((m, kernel, n)), by_key.get((m, kernel, n))) for m in ("dense", "isa")]
        if not all(t and e and t.peak_memory_bytes and e.peak_memory_bytes for t, e in pairs):
            continue
        (dense_train, dense_eval), (isa_train, isa_eval) = pairs
        print(f"{n:>3}x{n:<3} {kernel:>7} {affinity / 2**20:>9.2f} "
              f"{(dense_train.peak_memory_bytes - dense_eval.peak_memory_bytes) / 2**20:>20.2f} "
              f"{(isa_train.peak_memory_bytes - isa_eval.peak_memory_bytes) / 2**20:>18.2f} "
              f"{dense_train.peak_memory_bytes / isa_train.peak_memory_bytes:>15.2f}x")
for kernel in KERNELS:
    peaks = [train[m, kernel, n].peak_memory_bytes for n in sizes for m in ("dense", "isa")
              if train.get((m, kernel, n)) and train[m, kernel, n].peak_memory_bytes]
    if len(peaks) == 2 * len(sizes):  # dense, ISA for every size, in order
        print(f"[{kernel:>6}] training memory dense/ISA from {peaks[0] / peaks[1]:.2f}x at {sizes[0]}x{sizes[0]} "
              f"to {peaks[-2] / peaks[-1]:.2f}x at {sizes[-1]}x{sizes[-1]}")
largest = max(sizes)
kept = [(train.get(("dense", "matmul", largest)), by_key.get(("dense", "matmul", largest)))]
if all(t and e and t.peak_memory_bytes and e.peak_memory_bytes for t, e in kept):
    extra = (kept[0][0].peak_memory_bytes - kept[0][1].peak_memory_bytes) / ((largest * largest) ** 2 * 4)
    print(check_guess(guess_kept_affinities, round(extra, 1),
                      "autograd keeps the softmax output for the backward pass, and the backward pass makes its own "
                      "N x N gradients (of the weights, then of the scores) while it is still alive.", tolerance=0.25))
counted = [(kernel, train.get(("dense", kernel, largest)), by_key.get(("dense", kernel, largest))) for kernel in KERNELS]
backward_flops = {kernel: step.flops - forward.flops for kernel, step, forward in counted
                  if step and forward and step.flops is not None and forward.flops is not None}
print(f"dense at {largest}x{largest}, GFLOPs the backward pass adds (training step - inference): "
      + ", ".join(f"{kernel} {flops / 1e9:.2f}" for kernel, flops in backward_flops.items()))
time_rows = [(n, train.get(("dense", k, n)), train.get(("isa", k, n)), k) for n in sizes for k in KERNELS]
print("\ntraining step time dense/ISA (range over the repeats): " + ", ".join(
    f"{k} {n}x{n} {d.time_ms / i.time_ms:.2f}x ({'-'.join(f'{r:.2f}' for r in ratio_range(d.time_range_ms, i.time_range_ms))})"
    for n, d, i, k in time_rows if d and i and d.time_ms and i.time_ms))
fused_train = [train["dense", "sdpa", n].peak_memory_bytes / train["isa", "sdpa", n].peak_memory_bytes for n in sizes
               if train.get(("dense", "sdpa", n)) and train.get(("isa", "sdpa", n))
               and train["dense", "sdpa", n].peak_memory_bytes and train["isa", "sdpa", n].peak_memory_bytes]
if fused_train:
    print(f"with sdpa, ISA's training step needs {1 / max(fused_train):.2f}x to {1 / min(fused_train):.2f}x dense's "
          f"memory at these sizes ({', '.join(f'{n}x{n}' for n in sizes)})")

# %% [markdown]
# Read the table: "train - eval" is what the backward pass adds over the inference peak of section 2, next to the
# size of one dense affinity. On the smallest maps it is made of $N \times C$ activations and the parameter
# gradients, for both methods (ISA's is larger there: it has two blocks of projections). As the map grows, dense
# `matmul`'s extra follows the affinity column — the kept softmax and the $N \times N$ gradients of the backward
# pass (the reveal counts them in affinities at the largest size) — while dense `sdpa` keeps no affinity and
# recomputes the scores in its backward pass (the line under the reveal: its backward pass adds more GFLOPs than
# `matmul`'s). ISA's
# affinities are $N(Q_hQ_w + P_hP_w)$ entries, not $N^2$. The two lines under the table read the last column
# from the smallest to the largest map for each kernel: whether the training dense/ISA memory ratio grows with the
# map with `matmul`, and whether it stays flat with `sdpa`. Then the training time ratios with their ranges, for the
# same reading as section 5, and the finding the table hides in its last column: with the fused kernel, ISA's
# training step needs *more* memory than dense's at every size printed (the factor on the last line). Neither keeps
# an $N \times N$ tensor then, and ISA keeps two blocks of projections' activations and its regrouping copies for
# the backward pass; the fused kernel takes ISA's memory argument away in training too.
#
# ## 6. The authors' protocol, and where the cost of the head goes
#
# The protocol this section follows is the efficiency script the authors released, the `__main__` of
# `lib/models/modules/isa_block.py` in
# [openseg.pytorch](https://github.com/openseg-group/openseg.pytorch): a random `1 x 2048 x 128 x 128` input (an
# R-101-D8 stage-4 map of a 1024 x 1024 image) on a GPU, a 3x3 conv-BN-ReLU 2048 -> 512, then `ISA_Module`
# (key 256, value 512) — or a dense block in its place — in `eval()` under `torch.no_grad()`; 110 calls, the
# first 10 as warm-up, the mean time of the other 100, each ended by `torch.cuda.synchronize()`; memory as
# `torch.cuda.max_memory_allocated()` minus the input's bytes, in MB ($2^{20}$ bytes). It counts no FLOPs.
#
# What it leaves out, and what this notebook does differently: the script's `ISA_Module` ends with a 1x1
# conv-BN-ReLU on the concatenation of input and context (1024 -> 512 channels) that `attention_module(...,
# paper_setting=True)` does not include (mmseg's `ISAHead` has the same 1x1 `out_conv`, and a classifier after
# it); the script never resets the peak-memory counter, so its "memory" holds the weights and the largest peak
# of any call; and it measures one map size only. FLOPs need only shapes, so the setting can be counted here
# on any machine, part by part (on `meta` tensors: nothing is computed, no memory is used).

# %%
paper_input = torch.empty(1, PAPER_IN_CHANNELS, PAPER_SIZE, PAPER_SIZE, device="meta")
context_input = torch.empty(1, PAPER_CHANNELS, PAPER_SIZE, PAPER_SIZE, device="meta")
in_conv = count_module_flops(ConvBNReLU(PAPER_IN_CHANNELS, PAPER_CHANNELS, 3, padding=1), paper_input)
parts = {method: count_module_flops(attention_module(method, "matmul", PAPER_CHANNELS, PAPER_ISA_CHANNELS),
                                    context_input) for method in ("dense", "isa")}
heads = {method: count_module_flops(attention_module(method, "matmul", PAPER_CHANNELS, PAPER_ISA_CHANNELS,
                                                     paper_setting=True), paper_input) for method in parts}
assert all(heads[m] == in_conv + parts[m] for m in parts)  # the setting is exactly conv + attention
pixels = PAPER_SIZE * PAPER_SIZE
print(f"{PAPER_SIZE}x{PAPER_SIZE}, counted GFLOPs: 3x3 in_conv {in_conv / 1e9:.1f}; dense attention "
      f"{parts['dense'] / 1e9:.1f}; ISA attention {parts['isa'] / 1e9:.1f}")
print(f"share of the 3x3 in_conv: {in_conv / heads['isa']:.0%} of conv + ISA, {in_conv / heads['dense']:.0%} of "
      "conv + dense")
print(f"per pixel: in_conv {in_conv / pixels / 1e6:.1f} MFLOPs (9 x {PAPER_IN_CHANNELS} x {PAPER_CHANNELS} "
      f"multiply-adds); ISA {parts['isa'] / pixels / 1e6:.1f}; dense {parts['dense'] / pixels / 1e6:.1f}")
print(f"dense/ISA: attention alone {parts['dense'] / parts['isa']:.1f}x, conv + attention (the script's setting) "
      f"{heads['dense'] / heads['isa']:.2f}x")

# %% [markdown]
# The 3x3 input convolution reads 2048 channels over a 3x3 window for each of the 512 outputs:
# $2 \cdot 9 \cdot 2048 \cdot 512 \approx 18.9$ MFLOPs per pixel, several times what the ISA block does per pixel
# (two blocks of $C = 512$ projections plus $256 + 64 = 320$ pairs: 256 in the long-range step, 64 in its block).
# So in the ISA head the convolution takes most of the FLOPs (the share printed above), and the dense/ISA ratio of
# the whole setting is far smaller than that of the attention alone: the saving on attention is diluted by a cost
# both methods pay. A dense block at this size, on the other hand, costs more than the convolution: its $N^2$ pairs
# (16,384² of them) dominate everything.
#
# ## 7. On a GPU: the authors' measurement
#
# With a CUDA device (or `PAPER_SETTING = True`), this runs the script's protocol on both methods: the
# 2048-channel input through the 3x3 conv-BN-ReLU, 10 warm-up calls, the mean of 100, memory as the call's
# peak plus the resident weights, in MiB (the bench resets the peak counter before each method, so one method's
# peak cannot leak into the other's). The same from a shell: `isanet bench attention --paper-setting --device
# cuda`.

# %%
if run_paper:
    paper_rows = bench_attention([(PAPER_SIZE, PAPER_SIZE)], channels=PAPER_CHANNELS, isa_channels=PAPER_ISA_CHANNELS,
                                 kernels=("matmul",), device=device, paper_setting=True, statistic="mean",
                                 repeats=100 if on_gpu else 3, warmup=10 if on_gpu else 1,
                                 memory_cap_bytes=int(MEMORY_CAP_GB * 2**30) if not on_gpu else None)
    print(format_rows(paper_rows))
    for row in paper_rows:
        memory = "-" if row.paper_memory_mib is None else f"{row.paper_memory_mib:,.0f} MiB"
        spread = "" if row.time_range_ms is None else f" ({row.time_range_ms[0]:.1f}-{row.time_range_ms[1]:.1f})"
        print(f"{row.method:>5}: memory as the authors count it {memory}, time {row.time_ms:.1f} ms (mean){spread}")
    measured = {row.method: row for row in paper_rows if row.status == "ok"}
    if len(measured) == 2:
        print(f"dense/ISA: time {measured['dense'].time_ms / measured['isa'].time_ms:.2f}x, memory "
              f"{measured['dense'].paper_memory_mib / measured['isa'].paper_memory_mib:.2f}x; counted FLOPs "
              f"{heads['dense'] / heads['isa']:.2f}x (conv + attention), {parts['dense'] / parts['isa']:.1f}x "
              "(attention alone)")
else:
    print("skipped: no GPU here (set PAPER_SETTING = True to force it; a dense 128x128 map needs a 1 GiB affinity "
          "and minutes on a CPU)")

# %% [markdown]
# When this cell ran on a GPU, its rows are the numbers to put next to the paper's efficiency table: same
# protocol, one device, one run; its last line sets the measured time and memory ratios beside the counted FLOP
# ratios of section 6 (the dense 128x128 affinity alone is $16384^2 \times 4$ bytes = 1 GiB in float32). Without
# a GPU it printed "skipped" and claims nothing.

# %% [markdown]
# ## Summary
#
# - Dense attention costs $N\pi + 2N^2(d+C)$ FLOPs, ISA $2N'\pi + 2N'(Q_hQ_w + P_hP_w)(d+C)$: ISA pays its
#   projections twice, so it is more expensive on small maps and cheaper from a side the formula gives
#   (`break_even_side`, printed in section 1); the counter agrees with the formula to the FLOP.
# - With an explicit affinity (`matmul`) dense memory grows like $N^2$; a fused kernel (`sdpa`) never stores the
#   affinity and brings the dense/ISA memory ratio close to 1x (the range section 4 printed) — but not the FLOP
#   ratio; whether time follows is what section 5 printed.
# - The authors' released efficiency script (openseg `isa_block.py`) measures a 2048 x 128 x 128 input, 3x3 conv,
#   eval, mean of 100 GPU calls, `max_memory_allocated` minus the input. In that setting the 3x3 convolution takes
#   most of the ISA head's FLOPs, which is why the whole-setting ratio is far below the attention-only one.
#
# ## Exercises
#
# Each solution is a hidden code cell below its exercise (click the "..." to show it); try first.
#
# 1. *(easy)* By hand: how many (query, key) pairs does dense attention form on a 128 x 128 map, and how many
#    does ISA with 8 x 8 blocks form? Check with `attention_cost`.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
n, loc = 128, 8
pixels = n * n                                   # 16,384 pixels, no padding (8 divides 128)
dense_pairs = pixels ** 2                        # every pixel with every pixel
isa_pairs = pixels * ((n // loc) ** 2 + loc ** 2)  # each pixel: 256 long-range partners, 64 in its block
per_pair = 2 * (PAPER_ISA_CHANNELS + PAPER_CHANNELS)
assert attention_cost("dense", n, n).affinity == dense_pairs * per_pair
assert attention_cost("isa", n, n).affinity == isa_pairs * per_pair
print(f"dense {dense_pairs:,} pairs, ISA {isa_pairs:,} pairs: {dense_pairs / isa_pairs:.1f}x fewer")

# %% [markdown]
# 2. *(easy)* With 4 x 4 blocks instead of 8 x 8 (C = 512, d = 256), from which side is ISA cheaper in FLOPs?
#    Predict the direction first: smaller blocks make the short-range step cheaper but the long-range groups
#    larger.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
for loc in (4, 8, 16):
    print(f"{loc:>2}x{loc:<2} blocks: cheaper from n = {break_even_side(512, 256, (loc, loc))} "
          f"(divisible sides: {break_even_estimate(512, 256, (loc, loc)):.1f})")
# The inequality reads N (1 - 1/PhPw) > pi / 2(d+C) + PhPw, the block area PhPw = loc_h * loc_w: the projection
# term is the same for every factor and much larger than PhPw here, so the factor barely moves the break-even; padding
# (sides just above a multiple of the block) moves the "from then on" side more.
print(f"pi / 2(d+C) = {projection_flops_per_pixel(512, 256) / (2 * (256 + 512)):.0f} against PhPw = 16, 64, 256")

# %% [markdown]
# 3. *(medium)* Which `down_factor` (square) gives the fewest FLOPs on a 128 x 128 map with C = 512, d = 256?
#    Notebook 01 found the fewest *affinity entries* at 10 (tied with 13). Is the FLOP optimum the same, and why
#    (or why not)? List every factor that reaches the minimum.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
flops = {loc: attention_cost("isa", 128, 128, 512, 256, (loc, loc)).total for loc in range(2, 33)}
fewest = [loc for loc in flops if flops[loc] == min(flops.values())]  # min() alone would hide a tie
entries = {loc: Partition(128, 128, loc, loc).affinity_entries()[1] for loc in flops}
fewest_entries = [loc for loc in entries if entries[loc] == min(entries.values())]
print(f"fewest FLOPs at down_factor {fewest}: {min(flops.values()) / 1e9:.2f} GFLOPs; fewest affinity entries at "
      f"{fewest_entries}: {flops[fewest_entries[0]] / 1e9:.2f} GFLOPs")
for loc in fewest:
    part = Partition(128, 128, loc, loc)
    print(f"  {loc:>2}x{loc:<2} blocks: padded {part.padded_h}x{part.padded_w}, Q_hQ_w + P_hP_w = "
          f"{part.glb_h * part.glb_w} + {loc * loc} = {part.glb_h * part.glb_w + loc * loc} partners per pixel")
# The pair term is affinity entries x 2(d + C), so it is smallest where the entries are; but the projections
# 2 N' pi are far larger per pixel and grow with the padding N', so factors that pad nothing win. Among those
# (the divisors of 128) the pair term is smallest where Q_hQ_w + P_hP_w is: 8 and 16 tie, because swapping the
# block side P and the block count Q = 128 / P swaps the two terms of the sum (256 + 64 = 64 + 256).

# %% [markdown]
# 4. *(medium)* Measure, on this device, the peak memory of dense attention with both kernels on a 40 x 40 map
#    (`bench_attention`, dense only) and compare the saving with the size of one float32 affinity.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
side = 40
small = bench_attention([(side, side)], channels=channels, isa_channels=isa_channels, methods=("dense",),
                        kernels=("matmul", "sdpa"), device=device, repeats=1, warmup=0)
peaks = {row.kernel: row.peak_memory_bytes for row in small}
affinity_bytes = (side * side) ** 2 * 4
print(f"dense {side}x{side}: matmul {peaks['matmul'] / 2**20:.2f} MiB, sdpa {peaks['sdpa'] / 2**20:.2f} MiB; "
      f"saved {(peaks['matmul'] - peaks['sdpa']) / affinity_bytes:.1f} affinities of {affinity_bytes / 2**20:.2f} MiB")

# %% [markdown]
# 5. *(hard)* Add the part of the authors' setting that this notebook leaves out — the 1x1 conv-BN-ReLU from
#    1024 (input and context concatenated) to 512 channels at the end of `ISA_Module` — and recompute the
#    dense/ISA FLOP ratio of the whole setting. Does it move the ratio towards 1 or away from it?

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
concat = torch.empty(1, 2 * PAPER_CHANNELS, PAPER_SIZE, PAPER_SIZE, device="meta")
out_conv = count_module_flops(ConvBNReLU(2 * PAPER_CHANNELS, PAPER_CHANNELS), concat)
with_out = {method: heads[method] + out_conv for method in heads}
print(f"1x1 out conv: {out_conv / 1e9:.1f} GFLOPs; dense/ISA without it {heads['dense'] / heads['isa']:.3f}x, "
      f"with it {with_out['dense'] / with_out['isa']:.3f}x")
assert with_out["dense"] / with_out["isa"] < heads["dense"] / heads["isa"]  # a shared cost dilutes the ratio

# %% [markdown]
# ## Further reading
#
# - Huang et al., *Interlaced Sparse Self-Attention for Semantic Segmentation*,
#   [arXiv:1907.12273](https://arxiv.org/abs/1907.12273): the method section (self-attention, the interlaced
#   factorisation, its complexity) and the experiments' efficiency comparison with other context modules.
# - The protocol: openseg.pytorch, `lib/models/modules/isa_block.py` (its `__main__`), and the ISA head this kit
#   matches: mmsegmentation `mmseg/models/decode_heads/isa_head.py`.
# - Dense attention as a vision block: Wang et al., *Non-local Neural Networks*,
#   [arXiv:1711.07971](https://arxiv.org/abs/1711.07971).
# - Fused attention that never stores the affinity: Dao et al., *FlashAttention*,
#   [arXiv:2205.14135](https://arxiv.org/abs/2205.14135); Rabe & Staats, *Self-attention Does Not Need O(n²)
#   Memory*, [arXiv:2112.05682](https://arxiv.org/abs/2112.05682).
# - Other sparse factorisations of attention: Child et al., *Sparse Transformers*,
#   [arXiv:1904.10509](https://arxiv.org/abs/1904.10509); Huang et al., *CCNet: Criss-Cross Attention*,
#   [arXiv:1811.11721](https://arxiv.org/abs/1811.11721).
