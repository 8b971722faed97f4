"""The teaching model the notebooks show: the context task, trained with the teaching recipe, and the experiment
that ranks the heads on it.

- :func:`teaching_data`: the context task (:mod:`isanet.data.context`) written once under ``data/samples/``;
- :func:`teaching_config` / :func:`train_teaching`: one run of the teaching recipe
  (:data:`isanet.engine.recipes.TEACHING`) with a given head and seed, as notebook 04 runs it live and
  ``benchmarks/context_experiment.py`` runs it for every head and seed;
- :func:`teaching_checkpoint`: the trained ISA teaching model shipped in the repository (about 2 MB, made by
  ``benchmarks/make_teaching_checkpoint.py``), so that notebook 02 and the explorer page open on a model that
  learnt, in quick mode too;
- :func:`reference_results`: the committed reference run of the experiment (every head, three seeds), read by
  notebooks 04 and 06 beside what they measure live.

Everything here is SYNTHETIC: it shows what attention can carry across a picture, nothing about real scenes.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from isanet.data.context import CONTEXT_DEFAULTS, CONTEXT_TASKS, beacon_pixels
from isanet.data.registry import write_sample_dataset
from isanet.engine.config import DEFAULT_MODEL, TrainConfig
from isanet.engine.recipes import TASK_RECIPES, TEACHING
from isanet.engine.trainer import train
from isanet.notebook.session import repo_root

ASSETS = Path(__file__).resolve().parent / "assets"
REPO_BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"  # the scripts that make the assets
SHIPPED_CHECKPOINT = ASSETS / "teaching_isa.pth"
REFERENCE_RESULTS = ASSETS / "context_experiment.json"
#: The same experiment on the one-hop task (``context-one-hop``), the contrast: a model learns the hops its task needs.
ONE_HOP_RESULTS = ASSETS / "context_experiment_one_hop.json"
#: The OpenCV the shipped model and reference results were made with (pyproject pins it): its colour
#: conversions are part of the augmentation, and one rounding step more or less on a few per cent of
#: pixels sends a 500-iteration run elsewhere (OpenCV 5.1 made seed 0 end at 68.7 mIoU, not 93.7).
OPENCV_VERSION = "5.0.0"
#: The context task the teaching model is trained and measured on (``isanet sample-data context`` defaults).
TEACHING_DATA = dict(seed=0, **CONTEXT_DEFAULTS)
#: The task the notebooks teach with: the relay task, on which ISA needs both steps.
TEACHING_TASK = "context"
#: Iterations of a quick (test-runner) run: every code path, far too few to learn.
QUICK_ITERS = 20
FULL_ITERS = TEACHING.iters


def teaching_data(root: str | os.PathLike | None = None, quiet: bool = False, task: str = TEACHING_TASK) -> Path:
    """The context task ``task`` (a kind of :data:`isanet.data.context.CONTEXT_TASKS`) written once under
    ``data/samples/``. The folder is named by the kind and the beacon's size (``context-16px_seed0``), so a folder
    an older checkout wrote with another geometry is never read as this one."""
    if task not in CONTEXT_TASKS:
        raise ValueError(f"unknown context task {task!r}: choose one of {sorted(CONTEXT_TASKS)}")
    beacon = beacon_pixels(TEACHING_DATA["size"], CONTEXT_TASKS[task].beacon_side)
    folder = Path(root or repo_root()) / "data" / "samples" / f"{task}-{beacon}px_seed{TEACHING_DATA['seed']}"
    if not (folder / "SAMPLE_DATA.txt").is_file():
        write_sample_dataset(task, folder, **TEACHING_DATA)
        if not quiet:
            print(f"wrote the SYNTHETIC context task {task!r} to {folder}")
    return folder


def teaching_config(work_dir: str | os.PathLike, root: str | os.PathLike | None = None, *, head: str = "isa",
                    seed: int = 0, iters: int | None = None, quick: bool = False, quiet: bool = True,
                    task: str = TEACHING_TASK, **overrides) -> TrainConfig:
    """One run of the task's recipe (:data:`isanet.engine.recipes.TASK_RECIPES`: ``teaching`` for the relay task)
    on the context task ``task``: ``head`` and ``seed`` (weights and data order; the data set itself is always
    :data:`TEACHING_DATA`). ``quick``: :data:`QUICK_ITERS` iterations on a few validation images; ``overrides``:
    any other :class:`TrainConfig` field."""
    data_root = teaching_data(root, quiet=quiet, task=task)
    recipe = TASK_RECIPES[task]
    iters = iters or (QUICK_ITERS if quick else recipe.iters)
    settings = dict(iters=iters, save_every=iters, keep_checkpoints=1, progress=False,
                    eval_every=iters if quick else min(recipe.eval_every, iters),
                    model_overrides={"head": head}, limit_val=4 if quick else None)
    settings.update(overrides)
    return TrainConfig(name=DEFAULT_MODEL, recipe=recipe.name, data_root=data_root, work_dir=work_dir, device="cpu",
                       seed=seed, dataset="folder", **settings)


def train_teaching(work_dir: str | os.PathLike, root: str | os.PathLike | None = None, *, head: str = "isa",
                   seed: int = 0, on_log=None, **options) -> dict:
    """Train one teaching run; returns its row: head, seed, iterations, final validation mIoU, the curve,
    seconds (wall and this process's CPU time) and the checkpoint."""
    records: list[dict] = []

    def keep(record: dict) -> None:
        if "mIoU" in record:
            records.append({"iter": record["iter"], "mIoU": record["mIoU"]})
        if on_log is not None:
            on_log(record)

    cpu, wall = time.process_time(), time.perf_counter()
    config = teaching_config(work_dir, root, head=head, seed=seed, **options)
    summary = train(config, on_log=keep)
    return {"task": options.get("task", TEACHING_TASK), "recipe": config.recipe, "head": head, "seed": seed,
            "iters": summary["iter"], "mIoU": summary["last_eval"].get("mIoU"),
            "curve": records, "cpu_s": round(time.process_time() - cpu, 1),
            "wall_s": round(time.perf_counter() - wall, 1), "checkpoint": summary["last_checkpoint"]}


def teaching_checkpoint() -> Path:
    """The shipped, trained ISA teaching model (fails with the command that makes it if it is missing)."""
    if not SHIPPED_CHECKPOINT.is_file():
        raise FileNotFoundError(f"{SHIPPED_CHECKPOINT} is missing: make it with "
                                "python benchmarks/make_teaching_checkpoint.py")
    return SHIPPED_CHECKPOINT


def teaching_test_settings(task: str = TEACHING_TASK):
    """The test settings of the task's recipe (:data:`isanet.engine.recipes.TASK_RECIPES`): the zoo entry's, at the
    recipe's validation scale, as the run validated and ``isanet eval`` of its checkpoint evaluates."""
    from isanet.models.zoo import get_entry

    return get_entry(DEFAULT_MODEL).test.override(None, tuple(TASK_RECIPES[task].val_scale))


def teaching_transform():
    """The test transform of the teaching recipe (resize into its validation scale, normalise)."""
    from isanet.data.transforms import TestTransform

    settings = teaching_test_settings()
    return TestTransform(settings.scale, settings.mean, settings.std)


def teaching_samples(root: str | os.PathLike | None = None, split: str = "val",
                     task: str = TEACHING_TASK) -> list[dict]:
    """The context task's ``split`` as ``{"image", "label", ...}`` samples (the folder reader's)."""
    from isanet.data.registry import build_dataset

    return list(build_dataset("folder", teaching_data(root, quiet=True, task=task), split, progress=False))


def one_team_mious(labels) -> dict[str, float]:
    """For each team, the mIoU of the labelling that is right on background and beacon and gives every object that
    one team: the most a head that cannot read the beacon can score by guessing one team for all objects (the
    yardstick of ``none``). ``labels``: the context task's label maps (class ids; ignored pixels
    are skipped by the metric whatever the guess)."""
    from isanet.data.context import CONTEXT_CLASSES, TEAM_CLASSES
    from isanet.evaluation.metrics import SegMetrics

    labels, scores = list(labels), {}  # read once per team: a generator would be spent after the first
    for team in TEAM_CLASSES:
        metrics = SegMetrics(len(CONTEXT_CLASSES))
        for label in labels:
            metrics.update(np.where(label >= TEAM_CLASSES[0], team, label), label)
        scores[CONTEXT_CLASSES[team]] = metrics.compute()["mIoU"]
    return scores


def random_copy(model, seed: int = 0):
    """The same architecture at random weights (mmseg's initialisation, seeded): the baseline of every
    "did it learn?" measurement."""
    import copy

    from isanet.data.sample_checkpoint import random_state_dict

    twin = copy.deepcopy(model)
    twin.load_state_dict(random_state_dict(twin, seed=seed))
    return twin.eval()


def reference_results(path: str | os.PathLike = REFERENCE_RESULTS) -> dict:
    """The committed reference run of ``benchmarks/context_experiment.py`` (machine, settings, every row)."""
    return json.loads(Path(path).read_text())


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Per head: the seeds, their mIoU values, the mean, the spread (max - min), the mean CPU minutes, and how
    many runs learnt (rows that record ``learnt``; None for files written before the field)."""
    summary: dict[str, dict] = {}
    for head in dict.fromkeys(row["head"] for row in rows):
        mine = [row for row in rows if row["head"] == head]
        values = [row["mIoU"] for row in mine]
        summary[head] = {"seeds": [row["seed"] for row in mine], "mIoU": values,
                         "mean": round(statistics.mean(values), 2), "spread": round(max(values) - min(values), 2),
                         "cpu_min": round(statistics.mean(row["cpu_s"] for row in mine) / 60, 2),
                         "learnt": sum(bool(row["learnt"]) for row in mine) if all("learnt" in row for row in mine)
                         else None}
    return summary


def format_summary(summary: dict[str, dict], costs: dict[str, dict] | None = None) -> str:
    """The per-head table in Markdown (mean, spread, every seed; attention cost columns when given)."""
    cost_head = " attention MFLOPs | peak KiB (inference) | peak KiB (training) |" if costs else ""
    lines = [f"| head | mean mIoU | learnt | spread (max - min) | per seed | CPU min / run |{cost_head}",
             "| --- | ---: | ---: | ---: | --- | ---: |" + (" ---: | ---: | ---: |" if costs else "")]
    for head, values in summary.items():
        seeds = ", ".join(f"{v:.2f}" for v in values["mIoU"])
        cost = ""
        if costs:
            row = costs.get(head, {})
            cost = f" {row.get('mflops', '-')} | {row.get('peak_kib', '-')} | {row.get('train_peak_kib', '-')} |"
        learnt = "-" if values.get("learnt") is None else f"{values['learnt']}/{len(values['seeds'])}"
        lines.append(f"| {head} | {values['mean']:.2f} | {learnt} | {values['spread']:.2f} | {seeds} | "
                     f"{values['cpu_min']:.2f} |{cost}")
    return "\n".join(lines)


def identity_step_table(results: dict) -> str:
    """The ISA rows of a reference run with each step's attention replaced by identity, in Markdown: what each
    model loses without its long-range and without its short-range step (``identity_step`` of
    ``benchmarks/context_experiment.py``), with the run's task."""
    lines = ["| task | seed | intact | without long range | without short range | loses (long / short) |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in (row for row in results["rows"] if "identity_step" in row):
        steps = row["identity_step"]
        long, short = steps["long-range"], steps["short-range"]
        lines.append(f"| {results['task']} | {row['seed']} | {row['mIoU']:.2f} | {long:.2f} | {short:.2f} | "
                     f"{row['mIoU'] - long:.1f} / {row['mIoU'] - short:.1f} |")
    return "\n".join(lines)


def gaps(summary: dict[str, dict], baseline: str = "none") -> dict[str, float]:
    """Each head's mean mIoU minus the baseline's."""
    base = summary[baseline]["mean"]
    return {head: round(values["mean"] - base, 2) for head, values in summary.items() if head != baseline}


def largest_spread(summary: dict[str, dict], heads: tuple[str, ...]) -> float:
    return float(np.max([summary[head]["spread"] for head in heads if head in summary]))
