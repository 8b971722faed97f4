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
# # 04 · Fine-tuning ISANet on Pascal VOC, with live curves, and what the ISA head adds
#
# **Goal:** run the published training recipe (SGD, poly learning rate, cross-entropy plus the 0.4-weighted
# auxiliary FCN loss, mmseg's augmentation pipeline) from a notebook, watch the loss and the validation mIoU
# while it trains, compare predictions before and after — and then train the teaching model's ISA head on a task
# that needs long-range context, and read it against a reference run of the dense head, no context module and
# notebook 06's methods over many seeds, to see what the attention adds and what it costs.
#
# **You will learn**
#
# 1. the loss and the learning-rate schedule of the published recipe, as formulas and as `isanet.engine.trainer`;
# 2. how to drive `Trainer` from Python (one record per iteration) and draw live curves;
# 3. the decode heads (`ISANetConfig(head="isa" | "dense" | "none" | ...)`) and their costs,
#    $O(hw(P_hP_w + Q_hQ_w)C)$ for ISA against $O((hw)^2C)$ for dense ($hw$ pixels, $C$ channels);
# 4. why a test of context needs a task that needs context, and the one this kit ships (`isanet.data.context`);
# 5. how to read a comparison: equal settings, a baseline, and the spread over seeds before any difference.
#
# **Prerequisites:** notebooks 01–02 (ISA's two steps, $P$ = `down_factor`, $Q$ = `glb`); what SGD and
# cross-entropy are.
#
# With `DATA_ROOT` pointing at a real Pascal VOC 2012 (+ SBD aug) folder this is a real fine-tune (use a GPU and
# the full model). Without it, the notebook writes a small **synthetic** VOC-layout sample (its objects drawn
# from the first five VOC object classes) and trains a tiny R-18 ISANet from random weights on the CPU: the
# curves show the mechanics (in full settings the loss falls and the mIoU rises), not anything about the
# published models. Under a test runner (`QUICK`) it runs only a few iterations.
#
# **Time.** "Run all" in full settings (the synthetic data, default parameters) took 430 s and 399 s in two runs
# on this project's idle 2-core AMD EPYC (measured outside the notebook): the live ISA run on the relay task is
# about 5 of those minutes, the two fine-tunes about a minute each. In quick mode it takes under a minute.
#
# **Notation:** every letter used in notebooks 01–07 is on one card, [notation.md](notation.md).

# %% tags=["parameters"]
# Parameters. Relative paths are taken from the repository root.
DATA_ROOT = None          # Pascal VOC 2012 root (VOCdevkit/VOC2012 or the folder above it); None: synthetic sample
MODEL = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"  # the zoo recipe to follow (its loss, optimiser, pipeline)
TINY_MODEL = True         # train a small R-18 (64 channels) instead of the recipe's R-50: feasible on a CPU
INIT = None               # start from: an mmseg resnet*_v1c ImageNet file, or a zoo checkpoint; None: random weights
ITERS = None              # None: 20 when QUICK, else the voc-sample recipe's 300 (the published one: 20000 on 4 GPUs)
QUICK = None              # None: tiny settings when run by a test runner (pytest --nbmake, CI), full otherwise
DEVICE = "auto"           # "cpu", "cuda" or "auto"
PRECISION = "fp32"        # "bf16": autocast on CPUs with AVX-512 BF16 (speed-ups in benchmarks/README.md); "fp16" on GPUs
THREADS = None            # torch CPU threads; None: 1 when QUICK (steady on a busy shared CPU), else torch's default
WORK_DIR = "work_dirs/notebook_04"   # checkpoints and log.jsonl go here (a fresh run folder each time)
SAVE_AS = None            # final weights; None: data/samples/checkpoints/ (sample) or data/checkpoints/
SEED = 0
CONTEXT_HEADS = ("isa",)  # the ISA experiment: heads trained live on the relay task (one seed each; the reference
                          # run below holds every head over many seeds)
CONTEXT_THREADS = 1       # torch threads of the live teaching runs: the small model trains fastest on one
CONTEXT_SEED = 0
CONTEXT_ITERS = None      # None: 20 when QUICK, else the teaching recipe's 1000
OWN_DATA_ROOT = None      # your folder data set (classes.txt, images/, masks/) for the last section; None: synthetic

# %% [markdown]
# ## The recipe as formulas
#
# The model gives logits $z \in \mathbb{R}^{K \times H_{out} \times W_{out}}$ ($K$ classes, `num_classes`; the
# output's size, not the padded map $H \times W$ of the notation card) from the decode head and $z^{aux}$ from the
# auxiliary FCN head on stage 3. With labels $y$ (255 = ignore) and $\Omega$ all pixels of the batch, mmseg's
# loss (`seg_losses`, `cross_entropy`) is
#
# $$\mathcal{L} = \frac{1}{|\Omega|} \sum_{i \in \Omega,\, y_i \neq 255} -\log \mathrm{softmax}(z_i)_{y_i}
# \;+\; 0.4 \cdot \frac{1}{|\Omega|} \sum_{i \in \Omega,\, y_i \neq 255} -\log \mathrm{softmax}(z^{aux}_i)_{y_i}$$
#
# (divided by *all* pixels, ignored ones included: mmseg's default `avg_non_ignore=False`). SGD with momentum 0.9
# and weight decay $5\cdot10^{-4}$ follows the poly schedule (`poly_lr`, mmengine's `PolyLR`)
#
# $$\eta(i) = (\eta_0 - \eta_{min}) \left(1 - \frac{i}{T}\right)^{0.9} + \eta_{min}, \qquad \eta_{min} = 10^{-4},$$
#
# with $i$ the iteration, $T$ the number of iterations (`iters`) and $\eta_0$ the base learning rate (`lr`).

# %% [markdown]
# ## Set-up: data, settings
#
# On the synthetic sample the settings come from `isanet.notebook.sample_finetune.sample_finetune_config`
# (tiny R-18, 64-px crops, 300 iterations; 20 under `QUICK`): a run whose curves show the mechanics in a few
# CPU-minutes.

# %%
# %matplotlib inline
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from IPython.display import Markdown, display
from matplotlib.figure import Figure

from isanet import ISANet, ISANetConfig
from isanet.data.context import MIN_CUE_DISTANCE
from isanet.data.registry import build_dataset
from isanet.engine.recipes import VOC_SAMPLE
from isanet.engine.trainer import TrainConfig, Trainer, poly_lr
from isanet.evaluation.inference import Predictor
from isanet.io.checkpoint import load_model, save_checkpoint
from isanet.models.zoo import get_entry
from isanet.notebook.plots import plot_head_comparison, plot_predictions, plot_run_curves, plot_training_curves
from isanet.notebook.quiz import check_guess
from isanet.notebook.sample_finetune import (
    FULL_ITERS,
    QUICK_ITERS,
    sample_finetune_config,
    sample_trained_path,
    training_step_peak_bytes,
)
from isanet.notebook.session import configure_torch, quick_mode, repo_root, resolve_path, sample_dataset
from isanet.notebook.teaching import FULL_ITERS as TEACHING_FULL_ITERS
from isanet.notebook.teaching import (
    ONE_HOP_RESULTS,
    format_summary,
    gaps,
    identity_step_table,
    one_team_mious,
    reference_results,
    summarize,
    teaching_checkpoint,
    teaching_data,
    teaching_samples,
    train_teaching,
)
from isanet.notebook.teaching import QUICK_ITERS as TEACHING_QUICK_ITERS

ROOT = repo_root()
quick = quick_mode(QUICK)
device = configure_torch(DEVICE, THREADS, quick)
iters = ITERS or (QUICK_ITERS if quick else FULL_ITERS)

if quick:  # a test run keeps nothing in work_dirs/
    work_dir = Path(tempfile.mkdtemp(prefix="isanet-notebook04-")) / "run"
else:
    work_dir = resolve_path(WORK_DIR, ROOT) / time.strftime("run-%Y%m%d-%H%M%S")
data_root = resolve_path(DATA_ROOT, ROOT)
synthetic = data_root is None
if synthetic and TINY_MODEL:
    config = sample_finetune_config(work_dir, ROOT, seed=SEED, iters=iters, quick=quick, device=device, init=INIT,
                                    name=MODEL, eval_at_start=True)
else:
    if synthetic:
        raise ValueError("TINY_MODEL = False needs real data: set DATA_ROOT (the R-50 recipe on the sample is "
                         "pointless on a CPU)")
    settings = VOC_SAMPLE.config_fields() if TINY_MODEL else {}
    settings.update(name=MODEL, iters=iters, save_every=max(iters // 3, 1), keep_checkpoints=1,
                    eval_at_start=True, progress=False)
    config = TrainConfig(data_root=data_root, work_dir=work_dir, device=device, seed=SEED, init=INIT, **settings)
config = replace(config, precision=PRECISION)
print(f"{'QUICK (test-runner) settings' if quick else 'notebook settings'}: iters {config.iters}, crop "
      f"{config.crop_size}, batch {config.batch_size}, lr {config.lr}, model {config.model_overrides or MODEL}")
print(f"device {device}" + (f", {torch.get_num_threads()} CPU thread(s)" if device == "cpu" else ""))
if synthetic:
    print("TRAINING ON SYNTHETIC SAMPLE DATA: the numbers below say nothing about ISANet on Pascal VOC.")

# %% [markdown]
# ## Build the trainer
#
# `Trainer(config)` fills every unset field from the zoo entry's recipe, builds the model (random weights
# unless `INIT`), the optimiser and the data stream, and says what it will do. Nothing has trained yet, so
# this is the moment to record the **predictions before**.

# %%
trainer = Trainer(config)
model = trainer.state.bare_model
# predicts as validation does: its settings, in the training precision
predictor = Predictor(model, trainer.state.eval_settings, trainer.optimisation.precision, trainer.state.device)
val_set = build_dataset("voc", config.data_root, split="val")
shown = [val_set[i] for i in range(min(3, len(val_set)))]


def predictions() -> list:
    """Class maps of the shown validation images, predicted the way evaluation predicts them."""
    return [predictor.class_ids(sample["image"]).numpy() for sample in shown]


def head_input_sizes(run) -> list[tuple[int, int]]:
    """The feature-map sizes (h, w) the decode head receives while ``run()`` executes."""
    sizes = []
    hook = model.decode_head.register_forward_pre_hook(
        lambda head, inputs: sizes.append(tuple(inputs[0][head.in_index].shape[-2:])))
    try:
        run()
    finally:
        hook.remove()
    return sizes


def training_crop_forward() -> None:
    """One forward pass at the training crop size (eval mode, no gradients: the batch-norm statistics stay
    untouched), to see the features the head trains on. The trainer relies on the model's mode: restore it."""
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *trainer.config.crop_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)


before = []
eval_features = head_input_sizes(lambda: before.extend(predictions()))
train_features = head_input_sizes(training_crop_forward)[0]
total = trainer.config.iters
rates = ", ".join(f"eta({i}) = {poly_lr(i, total, trainer.config.lr):.4f}" for i in (0, 1, total - 1))
print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters; {len(val_set)} validation "
      f"images; learning rates {rates} (T = {total})")
print(f"the decode head sees {train_features[0]}x{train_features[1]} features at the "
      f"{trainer.config.crop_size[0]}x{trainer.config.crop_size[1]} training crop and "
      f"{', '.join(f'{h}x{w}' for h, w in sorted(set(eval_features)))} at validation (test-scale resize, whole image)")

# %% [markdown]
# The learning rates printed are $\eta(0)$, $\eta(1)$ and $\eta(T-1)$ of the poly formula above. The second
# line gives the size of the feature map the decode head (and so the attention) works on: the backbone
# reduces the image 8 times, and validation images, resized to the test scale and predicted whole, are larger
# than the training crops.
#
# ## Train, with live curves
#
# The figure below is redrawn at every evaluation: the training loss (blue, with its running mean) and the
# validation mIoU (orange). The first mIoU point is the evaluation before any training.

# %%
records = []
handle = display(Figure(figsize=(7, 3.5)), display_id=True)
started = time.perf_counter()
for record in trainer.run():
    records.append(record)
    if "mIoU" in record:
        figure = Figure(figsize=(7, 3.5), layout="constrained")
        plot_training_curves(records, ax=figure.subplots())
        handle.update(figure)
        loss = f"loss {record['loss']:.3f}, " if "loss" in record else ""
        print(f"iter {record['iter']:>4}: {loss}val mIoU {record['mIoU']:.2f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
summary = trainer.summary()
trainer.close()
print(f"trained {summary['iter']} iterations in {summary['wall_time_s']:.0f} s; last checkpoint "
      f"{summary['last_checkpoint']}")
losses = [record["loss"] for record in records if "loss" in record]
uniform_loss = 1.4 * float(torch.log(torch.tensor(float(model.num_classes))))
print(f"first loss {losses[0]:.3f}, last {losses[-1]:.3f}; a uniform guess over {model.num_classes} classes on "
      f"every pixel would give 1.4 ln K = {uniform_loss:.3f} (less for the ignored pixels' share)")

# %% [markdown]
# The first loss is compared with what a classifier that guesses uniformly would score; the mIoU only moves
# once the classifier separates a class from the background.
#
# ## Predictions before and after
#
# Same images, same prediction path (test-scale resize, whole-image inference, logits back at the original
# size), in the VOC palette; white is "ignore" (the void borders VOC draws around objects).

# %%
after = predictions()
display(plot_predictions([{"image": s["image"], "maps": [s["label"], b, a]} for s, b, a in zip(shown, before, after)],
                         val_set.PALETTE, titles=["label", "before training", "after training"]))
first, last = records[0], [r for r in records if "mIoU" in r][-1]
published = get_entry(MODEL).mIoU
print(f"val mIoU {first['mIoU']:.2f} before -> {last['mIoU']:.2f} after {last['iter']} iterations"
      + (f" (SYNTHETIC data: not comparable with the published {published:.2f} of {MODEL})" if synthetic else
         f" (the published {MODEL}: {published:.2f} after its full recipe)"))
if quick:
    print(f"QUICK run: {last['iter']} iterations learn little beyond the background; run the notebook yourself "
          f"(QUICK = False: {ITERS or FULL_ITERS} iterations) to see the classes being learnt.")

# %% [markdown]
# Before training the predictions mean nothing (random weights); after it, the objects take their classes where
# the model learnt them. This is one seed of a small model on 16 pictures: its evaluations above need not rise
# steadily, and other seeds end elsewhere (`isanet.engine.recipes` lists three seeds of this recipe, from 48 to
# 96 mIoU), so read the pictures as the mechanics working, not as a score.
#
# ## Keep the weights
#
# The trainer's checkpoints (with optimiser state, for `--resume`) are in the work folder. We also save the
# bare weights with their meta data (`save_checkpoint`: the architecture goes into the file, so `load_model`
# rebuilds it from the file alone); the section *Your own data* fine-tunes from them.

# %%
if SAVE_AS is not None:
    save_as = resolve_path(SAVE_AS, ROOT)
elif synthetic:
    save_as = sample_trained_path(ROOT, iters=summary["iter"], seed=SEED)
else:
    save_as = resolve_path("data/checkpoints/isanet_finetuned_voc.pth", ROOT)
meta, _ = trainer.checkpoint_content(summary["iter"])
saved = save_checkpoint(model, save_as, meta={**meta, "note": "fine-tuned by notebook 04" + (
    " on SYNTHETIC sample data" if synthetic else "")})
print(f"saved {saved}")
if quick:
    shutil.rmtree(work_dir.parent, ignore_errors=True)

# %% [markdown]
# ## The ISA experiment: a task that needs context
#
# What does the attention buy? On the VOC-layout sample above, nothing can be concluded: every object's class is
# written on the object itself (its colour and stripes), so a head **without** any context module should solve
# it too (not measured here).
# To see what long-range context adds, the task must need it.
#
# **The context task** (`isanet.data.context`, `isanet sample-data context`): every picture holds one coloured
# **beacon** (red, green or blue) and two to four grey objects, all drawn alike. An object's class is the *team*
# of the beacon in the same picture: the same grey square is "red team" in one picture and "blue team" in the
# next, and the beacon is always far from every object (at least 30 % of the picture side away). A pixel on an
# object can only be labelled by reading a pixel far from it. This is the **relay task** (`context`): its beacon
# is small (16 px), so few of ISA's long-range groups hold it and most object pixels get the team in two hops
# (notebook 02 shows it; `isanet.data.context` says the geometry).
#
# **The teaching model** (`isanet.engine.recipes.TEACHING`, `isanet train ... --recipe teaching --head H`): a
# ResNet-V1c-10 at width 16, whose receptive field the cell below measures,
# on whole pictures, with the published `down_factor` $(8, 8)$ on the $20 \times 20$ feature map (padded to
# $24 \times 24$): 9 blocks of $8 \times 8$ and 64 long-range groups of $3 \times 3$ pixels, so both ISA steps
# attend over several pixels (whether a trained model needs both is what the identity-step table below
# measures).

# %%
context_samples = teaching_samples(ROOT, "val")[:4]
context_palette = build_dataset("folder", teaching_data(ROOT), "val").PALETTE
display(plot_predictions([{"image": s["image"], "maps": [s["label"]]} for s in context_samples], context_palette,
                         titles=["label (white: beacon; object colour = its team)"]))

# %% [markdown]
# Above: four validation pictures and their labels. The objects look the same in every picture; only the
# beacon's colour, far away, decides their label colour.
#
# How far does the backbone itself see? The gradient of one feature pixel at the picture's centre with respect to
# the input pixels of the shipped teaching model says which pixels can change it, and how much (its *effective*
# receptive field): the cell prints the square around the pixel that holds 90 % of the gradient, and the window
# where the gradient is at least 1 % of its peak.

# %%
rf_model = load_model(teaching_checkpoint()).eval()
rf_input = torch.zeros(1, 3, 160, 160, requires_grad=True)
rf_features = rf_model.backbone(rf_input)[rf_model.decode_head.in_index]  # 1 x C x 20 x 20 at stride 8
rf_features[0, :, 10, 10].sum().backward()
rf_grad = rf_input.grad.abs().sum(1)[0]  # 160 x 160: how much each input pixel moves the centre feature
rows, cols = torch.nonzero(rf_grad >= 0.01 * rf_grad.max(), as_tuple=True)
peak_row, peak_col = (int(value) for value in torch.nonzero(rf_grad == rf_grad.max())[0])
mass_side = next(2 * half for half in range(1, 160)  # the smallest square around the peak with 90 % of the gradient
                 if rf_grad[max(peak_row - half, 0):peak_row + half, max(peak_col - half, 0):peak_col + half].sum()
                 >= 0.9 * rf_grad.sum())
print(f"the centre feature pixel: 90 % of its input gradient within a {mass_side}-px square; gradient >= 1 % of "
      f"its peak within a {int(rows.max() - rows.min()) + 1} x {int(cols.max() - cols.min()) + 1}-px window of the "
      f"160-px picture; the beacon is at least {int(MIN_CUE_DISTANCE * 160)} px from every object pixel")

# %% [markdown]
# Read it against the beacon's distance. The convolutions are not blind beyond a few pixels: their gradient fades
# with distance but reaches far (the 1 % window). What matters is whether the faint part carries the team, and
# that is measured, not assumed: the `none` head of the reference run below has no attention at all, only these
# convolutions.
#
# The heads share the in_conv (3x3, $C$ = `channels`) and the classifier; with $x$ the in_conv output:
#
# * **ISA** (`head="isa"`): $\;y = \mathrm{out\_conv}([\,\mathrm{ISA}(x),\, x\,])$, two attention blocks
#   (`global_relation`, `local_relation`) over groups of $Q_hQ_w$ and blocks of $P_hP_w$ pixels;
# * **dense** (`head="dense"`): $\;y = \mathrm{out\_conv}([\,\mathrm{softmax}(QK^\top/\sqrt{d})V,\, x\,])$, one
#   attention block with the same projections over all $hw$ pixels (here $Q$, $K$, $V$ are the query, key and
#   value matrices and $d$ their width, not the block counts $Q_h, Q_w$);
# * **no context** (`head="none"`): $\;y = \mathrm{out\_conv}(x)$ (a 1x1 $C \to C$): the ablation;
# * notebook 06's methods as context modules on the same projections, each with two attention steps (the reach
#   after which ISA covers the whole map): `ccnet` (criss-cross, applied twice, CCNet's $R = 2$), `axial` (row
#   then column), `window` (plain then shifted $4 \times 4$ windows: smaller than the beacon distance),
#   `strided` (two block + lattice layers).
#
# One live run per head in `CONTEXT_HEADS` (seed `CONTEXT_SEED`): the teaching recipe's 1000 iterations on
# `CONTEXT_THREADS` thread(s), four to five CPU-minutes each, with a progress bar (`QUICK`: 20 iterations, which
# show only that the experiment runs). One run may stall: the reference run below says how often that happened
# over its seeds, and shows a stalled curve.

# %%
context_iters = CONTEXT_ITERS or (TEACHING_QUICK_ITERS if quick else TEACHING_FULL_ITERS)
live, threads = [], torch.get_num_threads()
torch.set_num_threads(CONTEXT_THREADS)
try:
    for head in CONTEXT_HEADS:
        with tempfile.TemporaryDirectory(prefix=f"isanet-context-{head}-") as scratch:
            live.append(train_teaching(scratch, ROOT, head=head, seed=CONTEXT_SEED, iters=context_iters,
                                       progress=not quick, **({"limit_val": 4} if quick else {})))
        print(f"{head:>6}: val mIoU {live[-1]['mIoU']:.2f} after {live[-1]['iters']} iterations "
              f"({live[-1]['cpu_s'] / 60:.1f} CPU min, {live[-1]['wall_s'] / 60:.1f} min wall)", flush=True)
finally:
    torch.set_num_threads(threads)
if quick:
    print(f"QUICK run: {context_iters} iterations per head — these numbers say NOTHING about the heads.")

# %% [markdown]
# One seed per head cannot rank the heads, nor say how often a head learns: that needs many seeds. The **reference
# run** below was not computed by this notebook: `benchmarks/context_experiment.py` trained every head over
# several seeds with the teaching recipe (the cell prints the task, the seeds and the machine; the table is also
# in `benchmarks/README.md`). A run **learnt** when its validation mIoU reached 85 (a head without context stays
# near 50). The bars are the means, the dots the seeds, the whiskers the min-max range; the table gives each
# head's learn rate beside its mean.
#
# **Predict:** which of `none`, `window`, `isa` and `dense` learn the task on most of their seeds? Set
# `guess_learners` to a set of head names, then run.

# %%
guess_learners = None  # your guess: a set of head names, e.g. {"isa"}

# %%
reference = reference_results()
context_summary = summarize(reference["rows"])
learners = {head for head in ("none", "window", "isa", "dense")
            if context_summary[head]["learnt"] > len(context_summary[head]["seeds"]) / 2}
print(check_guess(guess_learners, learners,
                  "a head learns the teams only if its attention can carry the beacon's colour to the objects: "
                  "none has no attention, window's windows are smaller than the beacon distance, and ISA's two "
                  "steps and dense reach the whole map."))
display(plot_head_comparison(context_summary, title=f"{reference['task']} task, reference run (SYNTHETIC)"))
display(Markdown(format_summary(context_summary, reference.get("attention_costs"))))
print(f"reference run: task {reference['task']!r}, recipe {reference['recipe']!r}, "
      f"{reference['rows'][0]['iters']} iterations per run; {reference['machine']}")
for head, values in context_summary.items():
    learnt = "" if values["learnt"] is None else f"; learnt on {values['learnt']} of {len(values['seeds'])} seeds"
    print(f"{head:>8}: mean {values['mean']:.2f} over seeds {values['seeds']}{learnt}")
gap = gaps(context_summary)
print(f"ISA - none {gap['isa']:+.2f}, dense - none {gap['dense']:+.2f} mIoU points (a head reads the beacon when "
      f"its gap is more than twice the spread of `none`, 2 x {context_summary['none']['spread']:.2f})")
one_team = one_team_mious(sample["label"] for sample in teaching_samples(ROOT, "val"))
print(f"one guessed team for every object (background and beacon right) would score at most "
      f"{max(one_team.values()):.2f} mIoU ({', '.join(f'{team} {value:.2f}' for team, value in one_team.items())}); "
      f"none scores {min(context_summary['none']['mIoU']):.2f} to {max(context_summary['none']['mIoU']):.2f}")
isa_vs_dense = context_summary["isa"]["mean"] - context_summary["dense"]["mean"]
isa_learnt = [row["mIoU"] for row in reference["rows"] if row["head"] == "isa" and row.get("learnt")]
print(f"ISA - dense {isa_vs_dense:+.2f} mIoU points over all seeds" + (
    "" if len(isa_learnt) in (0, len(context_summary["isa"]["seeds"])) else
    f"; over the ISA runs that learnt: {statistics.mean(isa_learnt) - context_summary['dense']['mean']:+.2f}"))
for head in ("window", "ccnet", "axial", "strided"):
    if head in context_summary:
        print(f"{head:>8} - ISA: {context_summary[head]['mean'] - context_summary['isa']['mean']:+.2f}")
costs = reference["attention_costs"]
print("attention cost at the 20 x 20 teaching map, ISA / dense: "
      + ", ".join(f"{label} {costs['isa'][key] / costs['dense'][key]:.2f}" for key, label in
                  (("mflops", "FLOPs"), ("peak_kib", "inference peak"), ("train_peak_kib", "training peak"))))
for row in (row for row in reference["rows"] if "cue_attention" in row):
    print(f"ISA seed {row['seed']}: cue lift (weight on the beacon + own team / uniform share), long / short range: "
          f"trained {row['cue_attention']['trained']['long_range']:.2f} / "
          f"{row['cue_attention']['trained']['short_range']:.2f}, random weights "
          f"{row['cue_attention']['random']['long_range']:.2f} / {row['cue_attention']['random']['short_range']:.2f}")
isa_rows = [row for row in reference["rows"] if row["head"] == "isa"]
stalled = [row for row in isa_rows if not row.get("learnt", True)]
lifted = [row for row in isa_rows if "cue_attention" in row]
if stalled and lifted:
    learnt_lifts = [row["cue_attention"]["trained"]["long_range"] for row in lifted if row["learnt"]]
    print(f"long-range cue lift of the seeds that learnt: {min(learnt_lifts):.2f} to {max(learnt_lifts):.2f}; of the "
          "stalled: " + ", ".join(f"{row['cue_attention']['trained']['long_range']:.2f}" for row in lifted
                                  if not row["learnt"]))
if stalled:
    display(plot_run_curves(stalled[:1] + [row for row in isa_rows if row.get("learnt")][:3],
                            title="ISA in the reference run: a stalled run beside runs that learnt"))
print(f"stalled ISA runs: {[(row['seed'], row['mIoU']) for row in stalled] or 'none'}")

# %% [markdown]
# **A stalled run.** If the reference run has one, the red curve above is it: it climbs like the others, then
# stays on a plateau near 70 that a run which learnt passes through. That value is what a model scores that tells
# one team apart and gives the other two one label: background, beacon and one team right, one of the two
# confused teams about half right, the other not at all, $(100 + 100 + 100 + 50 + 0) / 5 = 70$ (on the stalled
# seeds of benchmarks/README.md, `isanet eval` prints the confused pair); where a run ends depends on the seed. That is why
# the learn rate, not one run, is the number to read.
#
# **Which hops each model uses.** The same models with one ISA step's attention replaced by identity
# (`isanet.analysis.identity_step`: each pixel attends to itself alone, every projection kept), on the relay task
# above and on the one-hop task (`context-one-hop`: a 32-px beacon that every long-range group of `down_factor`
# (4, 4) holds, recipe `teaching-one-hop`):

# %%
one_hop = reference_results(ONE_HOP_RESULTS)
for results in (reference, one_hop):  # the runs that measured their identity steps
    if any("identity_step" in row for row in results["rows"]):
        display(Markdown(identity_step_table(results)))
for name, results in ((reference["task"], reference), (one_hop["task"], one_hop)):
    rows = [row for row in results["rows"] if "identity_step" in row and row.get("learnt", True)]
    if rows:
        loss = {step: [row["mIoU"] - row["identity_step"][step] for row in rows] for step in ("long-range", "short-range")}
        print(f"{name}: a model that learnt loses {min(loss['long-range']):.1f} to {max(loss['long-range']):.1f} mIoU "
              f"points without its long-range step, {min(loss['short-range']):.1f} to {max(loss['short-range']):.1f} "
              f"without its short-range step ({len(rows)} seeds)")

# %% [markdown]
# A model learns only the hops its task needs. On the one-hop task every long-range group holds beacon pixels,
# so the long-range step alone brings the team to every object, and the models lose next to nothing without
# their short-range step. On the relay task most object pixels can get the team only through a relay pixel of
# their block, so the short-range step costs nearly as much as the long-range one (the printed ranges): both hops
# are needed. (Without a
# step, the layers after it still expect its output, so an ablated model can score below `none`.)

# %% [markdown]
# **How to read it.** The printed lines are the reading; check them against the bars.
#
# * **Against the baseline.** A head counts as reading the beacon only where its gap to `none` is more than twice
#   the spread of `none` over its seeds (printed), and its learn rate says how often it does. `none` has no
#   attention, and its convolutions reach the beacon only faintly (the receptive-field cell): it never learns the
#   teams, and scores a little above what one guessed team for every object would (the printed line), as if the
#   faint reach carried a little of the team.
# * **Against the paper.** Huang et al. claim that ISA's two sparse steps capture long-range context about as
#   well as dense attention, at a fraction of the cost on large maps. The ISA - dense line is that claim, on a
#   synthetic task built so that context is the whole problem; it says nothing about real scenes.
# * **By reach.** `window` attention, whose window is smaller than the beacon distance, cannot reach the beacon
#   in its two steps, whatever it learns; ccnet and axial reach the whole map in two steps, strided nearly all of
#   it. Notebook 06 puts
#   these numbers beside each method's reach.
# * **Where attention looks.** The cue lines (one per ISA seed, when the run measured them) give, for object
#   pixels, the share of each ISA map's weight on the pixels that decide the answer (the beacon and the object's
#   own team), divided by the share a uniform map over the same keys would give
#   (`isanet.analysis.same_class.cue_attention`): about 1 is what random weights give, larger means the trained
#   map seeks those pixels out. The lift does not sort the runs: the line under the cue lines puts the stalled
#   seed's lift inside the range of the seeds that learnt. Where a map looks is not what the model uses; the
#   identity-step table above measures that. Notebook 02 shows the maps.
# * **Cost.** The table's attention columns are measured on the $20 \times 20$ teaching map, and the cell prints
#   ISA / dense for each. At such a small map ISA saves little: its FLOPs are about dense's and its training
#   peak is above dense's (a ratio above 1), though its inference peak is lower. The savings come on the large maps of segmentation (notebook 03
#   measures them, up to 128 x 128).

# %% [markdown]
# ## Your own data
#
# The same trainer fine-tunes on your own images once they are in the **folder layout** (details and checks in
# `isanet.data.folder`):
#
# ```
# ROOT/classes.txt                  one class name per line, in id order (line 1 is id 0)
# ROOT/palette.txt                  optional: one "r g b" line per class
# ROOT/images/{train,val}/NAME.jpg  (or .jpeg .png .bmp .tif .tiff .webp .ppm .pgm)
# ROOT/masks/{train,val}/NAME.png   single-channel 8-bit class ids, 255 = ignore
# ```
#
# Every image/mask pair is checked before training starts: a missing mask, a size mismatch, a colour mask or an
# id beyond `classes.txt` stops with one line naming the file (`skip_bad=True`, CLI `--skip-bad`, leaves such
# pairs out instead). Without `OWN_DATA_ROOT` the cell writes a small **synthetic** folder data set (what
# `isanet sample-data folder --out DIR` writes): shapes of four colour classes on a background.

# %%
own_root = resolve_path(OWN_DATA_ROOT, ROOT)
own_synthetic = own_root is None
if own_synthetic:
    own_root = sample_dataset("folder", ROOT, num_train=16, num_val=8, size=96 if quick else 128, seed=SEED)
own_val = build_dataset("folder", own_root, split="val")
print(f"{len(own_val)} val images, classes from classes.txt: {', '.join(own_val.CLASSES)}")
display(plot_predictions([{"image": s["image"], "maps": [s["label"]]} for s in list(own_val)[:3]],
                         own_val.PALETTE, titles=["mask"]))

# %% [markdown]
# Above: three validation images and their masks in the data set's palette. Now the fine-tune: `init` is the
# VOC model saved above (21 classes), `dataset="folder"` reads the folder, and the model gets as many classes as
# `classes.txt` lists. The trainer keeps every weight of `init` except the classifier (`conv_seg`), which it
# re-initialises for the new classes; one of its first messages says so. From a shell it is
# `isanet train MODEL --dataset folder --data-root ROOT --init CHECKPOINT --work-dir DIR`.

# %%
own_work = work_dir.parent / "own" if quick else resolve_path(WORK_DIR, ROOT) / time.strftime("own-%Y%m%d-%H%M%S")
own_trainer = Trainer(replace(config, data_root=own_root, work_dir=own_work, dataset="folder", init=saved))
own_records = list(own_trainer.run())  # its messages (the classifier re-initialisation among them) go to stderr
own_trainer.close()
own_figure = Figure(figsize=(7, 3.5), layout="constrained")
plot_training_curves(own_records, ax=own_figure.subplots())
display(own_figure)
own_scores = [r for r in own_records if "mIoU" in r]
print(f"val mIoU on {'SYNTHETIC ' if own_synthetic else ''}folder data: {own_scores[0]['mIoU']:.2f} with the "
      f"re-initialised classifier -> {own_scores[-1]['mIoU']:.2f} after {own_scores[-1]['iter']} iterations")
if quick:
    print(f"QUICK run: {own_scores[-1]['iter']} iterations barely move a fresh classifier; run with QUICK = False "
          f"for the {ITERS or FULL_ITERS}-iteration fine-tune.")
    shutil.rmtree(own_work.parent, ignore_errors=True)

# %% [markdown]
# The curve is the same kind as before, on your classes: the first mIoU point is the model with VOC features and
# a fresh classifier, the last one after fine-tuning. `isanet eval MODEL --checkpoint DIR/latest.pth --data-root
# ROOT --confusion cm.png` then measures it and draws where each class's pixels went (notebook 05 shows the
# confusion matrix).

# %% [markdown]
# ## Summary
#
# * The recipe is the loss $\mathcal{L}$ (decode CE + 0.4 aux CE over all pixels) with SGD and the poly
#   schedule $\eta(i)$; `Trainer.run()` yields one record per iteration, `log.jsonl` keeps them.
# * The sample fine-tune (`sample_finetune_config`) shows the mechanics; its saved weights start the fine-tune on
#   your own data.
# * On the VOC-layout sample every class can be read off the object itself, so it cannot show what context
#   adds. The **context task** (a far beacon decides the objects' team) can: the heads differ only in the
#   context module, are compared at equal settings (the teaching recipe), and a difference counts only when it
#   is larger than the spread of one head over seeds — the reference run prints both. Quick-mode numbers say
#   nothing.
# * Your own images train the same way once they are in the folder layout (`dataset="folder"`, `init` = the
#   saved model: every weight but the classifier is kept).
# * What a head's attention costs depends on the size of its feature map: the reference table measures it on the
#   teaching model's $20 \times 20$ map; exercise 3 measures from which crop the dense $(HW)^2$ shows in a
#   training step's peak memory, and notebook 03 what ISA saves on large maps.

# %% [markdown]
# ## Exercises
#
# Four exercises, easy to hard. Each is followed by its worked solution, collapsed: click the bar on the
# left of the cell (or the three dots) to open it.

# %% [markdown]
# 1. **(easy)** Compute $\eta(150)$ for $T = 300$, $\eta_0 = 0.05$ by hand and check it with `poly_lr`.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Solution 1: the poly learning rate half-way
eta0, eta_min, total, step = 0.05, 1e-4, 300, 150
by_hand = (eta0 - eta_min) * (1 - step / total) ** 0.9 + eta_min
print(f"by hand {by_hand:.6f}, poly_lr {poly_lr(step, total, eta0):.6f}")
assert abs(by_hand - poly_lr(step, total, eta0)) < 1e-12

# %% [markdown]
# 2. **(easy)** How many parameters do the dense and the ISA context modules add over the no-context head?
#    Explain the numbers from the blocks each head has.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Solution 2: parameters of the context modules
counts = {head: sum(p.numel() for p in ISANet(ISANetConfig.tiny(head=head)).decode_head.parameters())
          for head in ("none", "dense", "isa")}
block = counts["isa"] - counts["dense"]  # ISA has one attention block more than dense
print(f"decode-head parameters: {counts}; one attention block = {block}")
channels = ISANetConfig.tiny().channels
assert counts["dense"] - counts["none"] - block == channels ** 2  # the out_conv's 1x1 weight: 2C x C, not C x C
print(f"dense adds {counts['dense'] - counts['none']} = one block {block} + C^2 = {channels ** 2} (out_conv reads "
      "[context, x], 2C channels, where the no-context out_conv reads C)")
assert counts["isa"] - counts["none"] == 2 * block + channels ** 2
print(f"ISA adds {counts['isa'] - counts['none']} = two blocks 2 x {block} (global_relation, local_relation) + C^2 "
      f"= {channels ** 2}")
keys = ISANetConfig.tiny().isa_channels  # d: the query/key width
projection = channels * keys + 2 * keys + keys * keys + 2 * keys  # two 1x1 conv + BN layers: C -> d -> d
by_layers = 2 * projection + (channels * channels + channels) + (channels * channels + 2 * channels)
assert by_layers == block
print(f"one block from its layers (C = {channels}, d = {keys}): key and query 2 x (Cd + 2d + d^2 + 2d) = "
      f"{2 * projection}, value C^2 + C (a conv with bias) = {channels ** 2 + channels}, output C^2 + 2C (conv + BN) = "
      f"{channels ** 2 + 2 * channels}; total {by_layers}")

# %% [markdown]
# 3. **(medium)** From the formula, how many bytes is one float32 dense affinity at a 64-, 128-, 256- and
#    384-px crop (feature maps at 1/8)? Measure the training-step peak of the tiny ISA and dense heads at the
#    same crops (`training_step_peak_bytes`, batch 1) and find from which crop the difference follows the
#    affinity.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# Solution 3: dense affinity bytes from the formula, next to the measured difference at the same crops
follows = []  # the crops where the difference reaches one affinity
for crop in (64, 128, 256, 384):
    affinity = ((crop // 8) ** 2) ** 2 * 4 / 2**20  # (hw)^2 float32 entries, MiB
    peaks = {}
    for head in ("isa", "dense"):
        torch.manual_seed(0)
        peaks[head] = training_step_peak_bytes(ISANet(ISANetConfig.tiny(head=head)), 1, (crop, crop), 5) / 2**20
    difference = peaks["dense"] - peaks["isa"]
    if difference >= affinity:
        follows.append(crop)
    print(f"crop {crop}: {crop // 8}x{crop // 8} features, one affinity {affinity:7.3f} MiB; step peak ISA "
          f"{peaks['isa']:.1f} MiB, dense {peaks['dense']:.1f} MiB, dense - ISA {difference:+.2f} MiB "
          f"({difference / affinity:+.1f} affinities)")
below = [crop for crop in (64, 128, 256, 384) if crop not in follows]
print(f"dense - ISA is at least one affinity at crops {follows or 'none'}; less than one at {below or 'none'}, "
      "where the backbone's activations, not the affinity, set the peak")

# %% [markdown]
# 4. **(hard)** From the reference run's rows (`reference["rows"]`, no training needed), find for ISA the
#    mIoU of its best and worst seed and the spread between them, and the share of seeds that learnt. If you
#    had trained only the worst seed, what would you have concluded about ISA against `none`? What must a
#    claim that one head is better than another rest on?

# %% jupyter={"source_hidden": true, "outputs_hidden": true} tags=["solution"]
# Solution 4: one seed against many, from the reference run
isa_values = {row["seed"]: row["mIoU"] for row in reference["rows"] if row["head"] == "isa"}
best, worst = max(isa_values, key=isa_values.get), min(isa_values, key=isa_values.get)
learnt_share = sum(row.get("learnt", row["mIoU"] >= 85) for row in reference["rows"] if row["head"] == "isa") / len(
    isa_values)
none_mean = context_summary["none"]["mean"]
print(f"ISA: best seed {best} {isa_values[best]:.2f}, worst seed {worst} {isa_values[worst]:.2f}, spread "
      f"{isa_values[best] - isa_values[worst]:.2f}; learnt on {learnt_share:.0%} of {len(isa_values)} seeds")
none_spread, dense_mean = context_summary["none"]["spread"], context_summary["dense"]["mean"]
learnt_mean = statistics.mean(isa_learnt)  # the reference cell's ISA runs that learnt
verdict_none = "reads the beacon" if isa_values[worst] - none_mean > 2 * none_spread else "does not read the beacon"
print(f"the worst seed alone is {isa_values[worst] - none_mean:+.2f} points from none's mean ({none_mean:.2f}): "
      f"against none you would conclude that ISA {verdict_none} (the gap against twice none's spread, "
      f"{2 * none_spread:.2f}), as the mean over all seeds ({context_summary['isa']['mean'] - none_mean:+.2f}) says")
print(f"against dense the worst seed is {isa_values[worst] - dense_mean:+.2f} points, while the seeds that learnt are "
      f"{learnt_mean - dense_mean:+.2f}: there one seed would have misled you")
print("a claim that one head is better needs many seeds per head, the learn rate beside the mean, a gap larger "
      "than the spread within each head, and a baseline (none) measured the same way")

# %% [markdown]
# ## Further reading
#
# * Huang et al., *Interlaced Sparse Self-Attention for Semantic Segmentation*,
#   [arXiv:1907.12273](https://arxiv.org/abs/1907.12273): the complexity analysis of the method section, and the
#   experiments comparing ISA with the dense self-attention baseline and with no context module.
# * mmsegmentation `configs/isanet/` (the recipe followed here) and `mmseg/models/decode_heads/isa_head.py`;
#   openseg.pytorch `lib/models/modules/isa_block.py`, the authors' block.
# * Wang et al., *Non-local Neural Networks*, [arXiv:1711.07971](https://arxiv.org/abs/1711.07971): the dense
#   block the `head="dense"` baseline follows.
# * Luo et al., *Understanding the Effective Receptive Field in Deep Convolutional Neural Networks*,
#   [arXiv:1701.04128](https://arxiv.org/abs/1701.04128): why a small convolutional network sees far pixels only
#   faintly.
# * Bouthillier et al., *Accounting for Variance in Machine Learning Benchmarks*,
#   [arXiv:2103.03098](https://arxiv.org/abs/2103.03098): why one seed per method cannot rank methods.
#
# **Going further.** The same run from a shell: `isanet train --data-root ... --work-dir ...` (add `--resume`
# to continue after an interruption, `torchrun --nproc_per_node N -m isanet.cli train ...` for several GPUs).
# Notebook 05 evaluates the published checkpoints.
