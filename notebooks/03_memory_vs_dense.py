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
# **Goal:** measure what interlaced sparse attention saves — peak memory, floating-point operations and wall
# time — against dense self-attention with the *same* projections, across feature-map sizes, with both
# attention kernels, and put the measurements next to what the paper and the formulas claim.
#
# * **dense**: one `SelfAttentionBlock` over the whole `h x w` map (an `hw x hw` affinity);
# * **ISA**: the same block twice, on the long-range groups then on the short-range blocks (`ISAModule`).
#
# Two kernels compute each: `matmul` forms the affinity matrix explicitly (what the paper measured), `sdpa` is
# PyTorch's fused `scaled_dot_product_attention` (on GPUs it never stores the affinity at all — a different
# way of saving memory, which ISA can use too).
#
# How each number is taken (details in `isanet/analysis/memory.py` and `isanet/analysis/measure.py`): **memory** is the peak of live tensor bytes
# during the call (CUDA: `max_memory_allocated`; CPU: an exact tensor-allocation tracker); **FLOPs** are counted
# by `torch.utils.flop_counter` on shapes only (free, even for sizes that do not fit); **time** is the median of
# a few calls. On a shared CPU the times are noisy; memory and FLOPs are exact.

# %% tags=["parameters"]
# Parameters. None picks a default for the device: small and quick on a CPU, the paper's sizes on a GPU.
DEVICE = "auto"           # "cpu", "cuda" or "auto"
THREADS = None            # CPU threads; None: 1 under a test runner (steady on busy shared CPUs), else the default
SIZES = None              # feature-map sides to measure; None: [16, 32, 48] on a CPU, [32, 64, 96, 128] on a GPU
CHANNELS = None           # channels of the map; None: 256 on a CPU (quick), 512 on a GPU (the paper's)
ISA_CHANNELS = None       # key/query channels; None: CHANNELS // 2 (the paper: 256 for 512)
DOWN_FACTOR = 8           # (loc_h, loc_w) = (8, 8), as in every published model
KERNELS = ("matmul", "sdpa")
REPEATS = 3               # timed calls per row (after one warm-up call)
MEMORY_CAP_GB = 4         # CPU: a row that would need more live memory is reported as "oom" instead of run
PAPER_SETTING = "auto"    # also run the authors' exact setting (2048x128x128 input): True, False, "auto" = on a GPU

# %% [markdown]
# ## Set-up

# %%
# %matplotlib inline
import time

import torch
from IPython.display import display

from isanet.analysis import attention_bench
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
from isanet.analysis.measure import count_module_flops
from isanet.models.interlaced import Partition
from isanet.notebook.plots import plot_bench
from isanet.notebook.session import configure_torch

device = configure_torch(DEVICE, THREADS)
on_gpu = device.startswith("cuda")
sizes = SIZES or ([32, 64, 96, 128] if on_gpu else [16, 32, 48])
channels = CHANNELS or (512 if on_gpu else 256)
isa_channels = ISA_CHANNELS or channels // 2
run_paper = on_gpu if PAPER_SETTING == "auto" else bool(PAPER_SETTING)
name = torch.cuda.get_device_name(device) if on_gpu else f"CPU, {torch.get_num_threads()} threads"
print(f"device: {device} ({name}); sizes {sizes}, {channels} channels, key/query {isa_channels}, "
      f"down_factor {DOWN_FACTOR}")
if not on_gpu:
    print("CPU RUN with small sizes and channels (quick). Memory and FLOPs are exact; times on a shared CPU are "
          "noisy. On a GPU the notebook measures the paper's sizes.")

# %% [markdown]
# ## 1. Measure
#
# Every size x kernel x method, in one run on one device, each on the same random input.

# %%
started = time.perf_counter()
rows = bench_attention([(n, n) for n in sizes], channels=channels, isa_channels=isa_channels,
                       down_factor=(DOWN_FACTOR, DOWN_FACTOR), kernels=KERNELS, device=device, repeats=REPEATS,
                       warmup=1, memory_cap_bytes=int(MEMORY_CAP_GB * 2**30) if MEMORY_CAP_GB else None,
                       progress=lambda row: print(f"  {row.method:>5} {row.kernel:>6} {row.height}x{row.width}: "
                                                  f"{row.status}", flush=True))
print(f"measured {len(rows)} rows in {time.perf_counter() - started:.1f} s\n")
print(format_rows(rows))

# %% [markdown]
# ## 2. Ratios: how many times more dense needs
#
# Above 1x, ISA is cheaper. On tiny maps the two relations of ISA cost more than one dense relation (ISA runs
# two blocks of projections); the saving appears, and then grows, as the map gets bigger.

# %%
print(format_ratios(rows))
display(plot_bench(rows))

# %% [markdown]
# ## 3. Measured against the formulas
#
# The affinity matrices are the part that grows fastest: `(hw)²` entries for dense and
# `HW·(glb_h·glb_w + loc_h·loc_w)` for ISA (`Partition.affinity_entries`). The projections (1x1 convolutions)
# grow only linearly, so the measured memory ratio approaches the affinity ratio from below as maps grow, and
# the FLOP ratio too (the matmuls of attention are `2·hw·hw·c` for dense).

# %%
print(f"{'size':>8} {'kernel':>7} {'affinity dense/ISA':>19} {'measured memory':>16} {'measured FLOPs':>15}")
by_key = {(row.method, row.kernel, row.height): row for row in rows}
for n in sizes:
    dense_entries, isa_entries = Partition(n, n, DOWN_FACTOR, DOWN_FACTOR).affinity_entries()
    for kernel in KERNELS:
        dense, isa = by_key.get(("dense", kernel, n)), by_key.get(("isa", kernel, n))
        if dense is None or isa is None:
            continue
        memory = (f"{dense.peak_memory_bytes / isa.peak_memory_bytes:.1f}x"
                  if dense.peak_memory_bytes and isa.peak_memory_bytes else "-")
        print(f"{n:>4}x{n:<3} {kernel:>7} {dense_entries / isa_entries:>18.1f}x {memory:>16} "
              f"{dense.flops / isa.flops:>14.1f}x")

# %% [markdown]
# ## 4. The paper's setting, counted
#
# The authors measured a `2048 x 128 x 128` map (an R-101-D8 stage-4 output of a 1024 x 1024 image) through a
# 3x3 conv-BN-ReLU to 512 channels, then the attention block (key/query 256), in eval mode on a GPU.
# FLOPs need only shapes, so we can count that setting exactly on any machine (on `meta` tensors: nothing is
# computed, no memory is used):

# %%
paper_input = torch.empty(1, PAPER_IN_CHANNELS, PAPER_SIZE, PAPER_SIZE, device="meta")
paper_flops = {}
for method in ("dense", "isa"):
    module = attention_module(method, "matmul", PAPER_CHANNELS, PAPER_ISA_CHANNELS, (8, 8), paper_setting=True)
    paper_flops[method] = count_module_flops(module, paper_input)
    print(f"{method:>5}: {paper_flops[method] / 1e9:8.1f} GFLOPs (3x3 conv 2048->512 + attention) on "
          f"1x{PAPER_IN_CHANNELS}x{PAPER_SIZE}x{PAPER_SIZE}")
dense_entries, isa_entries = Partition(PAPER_SIZE, PAPER_SIZE).affinity_entries()
print(f"FLOPs dense/ISA: {paper_flops['dense'] / paper_flops['isa']:.2f}x;  affinity entries dense/ISA: "
      f"{dense_entries / isa_entries:.1f}x ({dense_entries * 4 / 2**20:,.0f} MiB vs {isa_entries * 4 / 2**20:,.0f} "
      "MiB in float32)")

# %% [markdown]
# ## 5. The paper's claims next to what we measured
#
# | the paper says | where to look here |
# | --- | --- |
# | Dense self-attention costs `O((hw)²)` memory and time; ISA's two sparse affinities cost `hw·(glb_h·glb_w + loc_h·loc_w)` | section 3: the affinity ratio, and the measured memory ratio approaching it |
# | ISA "decreases the computation and memory complexity substantially, especially when processing high-resolution feature maps" (abstract) | sections 1–2: the dense/ISA ratios grow with the map size |
# | Efficiency table measured on a GPU for a `2048 x 128 x 128` input | section 4 (FLOPs, counted) and, on a GPU, section 6 (memory and time, measured the authors' way) |
#
# The cell below prints this comparison with the numbers of this run. (If the package ships the paper's own
# efficiency table as `isanet.analysis.measure.PAPER_EFFICIENCY`, it is printed next to ours.)

# %%
largest = max(sizes)
for kernel in KERNELS:
    dense, isa = by_key.get(("dense", kernel, largest)), by_key.get(("isa", kernel, largest))
    smallest_d, smallest_i = by_key.get(("dense", kernel, min(sizes))), by_key.get(("isa", kernel, min(sizes)))
    if not all((dense, isa, smallest_d, smallest_i)) or not (dense.peak_memory_bytes and isa.peak_memory_bytes):
        continue
    grow = (dense.peak_memory_bytes / isa.peak_memory_bytes) / (smallest_d.peak_memory_bytes /
                                                                smallest_i.peak_memory_bytes)
    print(f"[{kernel}] memory dense/ISA: {smallest_d.peak_memory_bytes / smallest_i.peak_memory_bytes:.1f}x at "
          f"{min(sizes)}x{min(sizes)} -> {dense.peak_memory_bytes / isa.peak_memory_bytes:.1f}x at "
          f"{largest}x{largest} (grows {grow:.1f}x with the size: {'as claimed' if grow > 1 else 'NOT as claimed'})")
print(f"paper setting ({PAPER_SIZE}x{PAPER_SIZE}): {dense_entries / isa_entries:.0f}x fewer affinity entries, "
      f"{paper_flops['dense'] / paper_flops['isa']:.1f}x fewer FLOPs (counted)")
paper_table = getattr(attention_bench, "PAPER_EFFICIENCY", None)
if paper_table:
    print("the paper's own efficiency table:", paper_table)

# %% [markdown]
# ## 6. On a GPU: the authors' own measurement
#
# With a CUDA device (or `PAPER_SETTING = True`), this runs exactly the authors' protocol: the 2048-channel
# input through the 3x3 conv-BN-ReLU, 10 warm-up calls, the mean of 100, memory as `max_memory_allocated()`
# minus the input, in MiB — the fair way to put our figures next to theirs (same device, same run). The same
# from a shell: `isanet bench attention --paper-setting --device cuda`.

# %%
if run_paper:
    paper_rows = bench_attention([(PAPER_SIZE, PAPER_SIZE)], channels=PAPER_CHANNELS, isa_channels=PAPER_ISA_CHANNELS,
                                 kernels=("matmul",), device=device, paper_setting=True, statistic="mean",
                                 repeats=100 if on_gpu else 3, warmup=10 if on_gpu else 1,
                                 memory_cap_bytes=int(MEMORY_CAP_GB * 2**30) if not on_gpu else None)
    print(format_rows(paper_rows))
    for row in paper_rows:
        memory = "-" if row.paper_memory_mib is None else f"{row.paper_memory_mib:,.0f} MiB"
        print(f"{row.method:>5}: memory as the authors count it {memory}, time {row.time_ms} ms (mean)")
else:
    print("skipped: no GPU here (set PAPER_SETTING = True to force it; a dense 128x128 map needs a 1 GiB affinity "
          "and minutes on a CPU)")
