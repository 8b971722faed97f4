"""The context experiment: every head trained with the teaching recipe on the context task, over several seeds.

Does long-range context help where the task needs it, and do ISA's two sparse steps learn it nearly as well as
dense attention (the paper's claim)? Each (head, seed) run trains the teaching model
(:data:`isanet.engine.recipes.TEACHING`) on the SYNTHETIC context task (:mod:`isanet.data.context`) and
records its final validation mIoU, curve and CPU time; the ISA runs also record how much attention their
long- and short-range maps put on the pixels that decide the answer (beacon and own team) against the uniform
share (:func:`isanet.analysis.same_class.cue_attention`, random weights beside them). Attention FLOPs and peak
memory of each head's context module are measured once at the teaching size (a 20 x 20 map, 64 channels).

    .venv/bin/python benchmarks/context_experiment.py --heads isa dense none ccnet axial window strided \\
        --seeds 0 1 2 --jobs 2 --json benchmarks/results/context_experiment.json

Runs go to separate processes (``--jobs``, one CPU thread each); the JSON file is rewritten atomically after
each finished run and a rerun skips the (head, seed) pairs it already holds, so an interrupted experiment
resumes. The table (Markdown) and the targets are printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from isanet.cli import parse_guarded
from isanet.cli.options import add_output
from isanet.data.context import CONTEXT_TASKS
from isanet.engine.config import plain
from isanet.engine.recipes import TASK_RECIPES
from isanet.io.atomic import atomic_path

HEADS = ("isa", "dense", "none", "ccnet", "axial", "window", "strided")


#: A run *learnt* the task when its validation mIoU reaches this: a head without context stays near 50 (it
#: guesses one team for every object), runs that stall end between 66 and 74 (relay task, benchmarks/README.md).
LEARNT_MIOU = 85.0


def _one_run(task: str, head: str, seed: int, iters: int | None) -> dict:
    """One (head, seed) run in its own process, one thread; ISA runs add their identity-step mIoUs and their
    cue-attention lifts."""
    torch.set_num_threads(1)
    from isanet.io.checkpoint import load_model
    from isanet.notebook.teaching import train_teaching

    with tempfile.TemporaryDirectory(prefix=f"isanet_context_{head}_{seed}_") as work_dir:
        row = train_teaching(work_dir, head=head, seed=seed, task=task, **({"iters": iters} if iters else {}))
        row["learnt"] = row["mIoU"] is not None and row["mIoU"] >= LEARNT_MIOU
        if head == "isa":
            model = load_model(row["checkpoint"]).eval()
            row["identity_step"] = identity_step_mious(model, task)
            row["cue_attention"] = cue_lifts(model, task)
    row.pop("checkpoint")
    return row


def identity_step_mious(model: torch.nn.Module, task: str) -> dict[str, float]:
    """Validation mIoU with each ISA step's attention replaced by identity (:mod:`isanet.analysis.identity_step`)."""
    from isanet.analysis.identity_step import STEP_OPTIONS, evaluate_identity_step
    from isanet.data.registry import build_dataset
    from isanet.notebook.teaching import teaching_data, teaching_test_settings

    dataset = build_dataset("folder", teaching_data(quiet=True, task=task), "val", progress=False)
    return {step: evaluate_identity_step(model, dataset, teaching_test_settings(task), step, progress=False)["mIoU"]
            for step in STEP_OPTIONS}


def cue_lifts(model: torch.nn.Module, task: str) -> dict:
    """Long- and short-range cue-attention lifts of a trained ISA model and of the same model at random weights."""
    from isanet.analysis.same_class import cue_attention
    from isanet.notebook.teaching import random_copy, teaching_samples, teaching_transform

    samples, transform = teaching_samples(task=task), teaching_transform()
    lifts = {}
    for name, candidate in (("trained", model), ("random", random_copy(model, seed=0))):
        measured = cue_attention(candidate, samples, transform).balanced()
        lifts[name] = {map_name: round(measured[map_name].lift, 3) for map_name in ("long_range", "short_range")}
    return lifts


def attention_costs(heads: tuple[str, ...]) -> dict[str, dict]:
    """FLOPs and peak memory of each head's context module at the teaching size: forward (inference) and the
    peak of forward + backward (what training holds)."""
    from isanet.analysis.measure import measure_footprint
    from isanet.engine.recipes import TEACHING_MODEL
    from isanet.models import build_model

    x = torch.randn(1, TEACHING_MODEL["channels"], 20, 20)  # 1 x C x 20 x 20: the 160-px picture at stride 8
    costs = {}
    for head in heads:
        model = build_model("isanet_r50-d8_4xb4-20k_voc12aug-512x512", num_classes=5, head=head,
                            **TEACHING_MODEL).eval()
        if head == "none":
            costs[head] = {"mflops": 0.0, "peak_kib": 0.0, "train_peak_kib": 0.0}
            continue
        context = ContextModule(model.decode_head)
        forward, training = measure_footprint(context, x), measure_footprint(context, x, backward=True)
        costs[head] = {"mflops": round(forward.flops / 1e6, 2), "peak_kib": round(forward.peak_memory_bytes / 1024, 1),
                       "train_peak_kib": round(training.peak_memory_bytes / 1024, 1)}
    return costs


class ContextModule(torch.nn.Module):
    """A context head's attention module alone (``head.context``), for measuring its cost."""

    def __init__(self, head: torch.nn.Module):
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.context(x)


def machine(jobs: int) -> str:
    """The CPU model and core count, how the runs shared it, and the software."""
    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        cpu = next((line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
                    if line.startswith("model name")), cpu)
    return (f"{cpu}, {os.cpu_count()} cores, {jobs} run(s) at once, one torch thread each, torch "
            f"{torch.__version__}, Python {platform.python_version()}")


def save(path: Path, result: dict) -> None:
    with atomic_path(path) as staging:
        staging.write_text(json.dumps(result, indent=1) + "\n")


def report(result: dict) -> str:
    """The table and the targets, as text."""
    from isanet.notebook.teaching import format_summary, gaps, largest_spread, summarize

    summary = summarize(result["rows"])
    lines = [format_summary(summary, result.get("attention_costs"))]
    if {"isa", "dense", "none"} <= summary.keys():
        gap = gaps(summary)
        spread = largest_spread(summary, ("isa", "dense", "none"))
        lines.append(f"ISA - none {gap['isa']:+.2f}, dense - none {gap['dense']:+.2f} mIoU points (target >= 15 and "
                     f"> twice the largest seed spread, {2 * spread:.2f}); ISA - dense "
                     f"{summary['isa']['mean'] - summary['dense']['mean']:+.2f} (target within 5)")
    if {"isa", "window"} <= summary.keys():
        lines.append(f"window - ISA {summary['window']['mean'] - summary['isa']['mean']:+.2f} mIoU points "
                     "(its window is smaller than the beacon distance)")
    for head, values in summary.items():
        learnt = [row for row in result["rows"] if row["head"] == head and row.get("learnt")]
        lines.append(f"{head}: learnt on {len(learnt)} of {len(values['seeds'])} seeds (mIoU >= {LEARNT_MIOU:g})")
    none = summary["none"]["mean"] if "none" in summary else None
    for row in result["rows"]:
        if "identity_step" in row:
            steps = row["identity_step"]
            lines.append(f"ISA seed {row['seed']}: intact {row['mIoU']:.2f}, identity short range "
                         f"{steps['short-range']:.2f} (loses {row['mIoU'] - steps['short-range']:.2f}; target >= 15), "
                         f"identity long range {steps['long-range']:.2f}" +
                         (f" ({steps['long-range'] - none:+.2f} against none; target within 5)" if none is not None
                          else ""))
    lifts = [row["cue_attention"] for row in result["rows"] if "cue_attention" in row]
    for row in lifts:
        lines.append(f"ISA cue-attention lift: trained {row['trained']}, random weights {row['random']}")
    lines.append(f"machine: {result['machine']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="context", choices=sorted(CONTEXT_TASKS),
                        help="the relay task (context, default) or the one-hop contrast; each with its recipe")
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iters", type=int, help="iterations per run (default: the recipe's)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, one CPU thread each")
    add_output(parser, "--json", kind="file", suffixes=(".json",), required=True,
               help="results file (read to resume, rewritten)")
    args = parse_guarded(parser, argv)
    args.json = Path(args.json)
    if args.jobs < 1 or (args.iters is not None and args.iters < 1):
        parser.error("--jobs and --iters must be at least 1")
    result = json.loads(args.json.read_text()) if args.json.exists() else {"rows": []}
    recipe = TASK_RECIPES[args.task]
    wanted = {"task": args.task, "iters": args.iters, "recipe_settings": plain(recipe.config_fields())}
    for name, value in wanted.items():  # a recipe retuned since the file was begun makes other runs
        if result["rows"] and result.get(name) != value:
            parser.error(f"--json {args.json}: holds runs of {name}={result.get(name)}, not {value}; choose another "
                         "file")
    result.update(wanted, recipe=recipe.name, machine=machine(args.jobs),
                  data=f"SYNTHETIC context task (isanet sample-data {args.task})", learnt_miou=LEARNT_MIOU)
    done = {(row["head"], row["seed"]) for row in result["rows"]}
    todo = [(head, seed) for seed in args.seeds for head in args.heads if (head, seed) not in done]
    from isanet.notebook.teaching import teaching_data

    teaching_data(task=args.task)  # written once before the runs start, not by each process at once
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(_one_run, args.task, head, seed, args.iters): (head, seed) for head, seed in todo}
        for future in as_completed(futures):
            row = future.result()
            result["rows"].append(row)
            save(args.json, result)
            print(f"{row['head']:>8} seed {row['seed']}: mIoU {row['mIoU']:.2f} "
                  f"({row['cpu_s'] / 60:.1f} CPU min)", flush=True)
    result["rows"].sort(key=lambda row: (HEADS.index(row["head"]), row["seed"]))
    # every head in the file, not only this call's: a resumed file keeps the costs of the heads run before
    result["attention_costs"] = attention_costs(tuple(dict.fromkeys(row["head"] for row in result["rows"])))
    save(args.json, result)
    print(report(result))
    print(f"{len(todo)} runs in {time.perf_counter() - started:.0f} s; SYNTHETIC data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
