"""The shipped teaching model: what it is, that it learnt the relay task with both of ISA's steps (the identity step
and the relay measure), and that its script reproduces it (``-m slow``: a full teaching run)."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
import torch

from isanet.analysis.identity_step import STEP_OPTIONS, evaluate_identity_step
from isanet.analysis.relay import relay_over_images
from isanet.analysis.same_class import cue_attention
from isanet.data.context import BEACON, TEAM_CLASSES
from isanet.data.registry import build_dataset
from isanet.engine.recipes import TEACHING
from isanet.io.checkpoint import load_model
from isanet.notebook.teaching import (
    ONE_HOP_RESULTS,
    OPENCV_VERSION,
    REPO_BENCHMARKS,
    SHIPPED_CHECKPOINT,
    gaps,
    one_team_mious,
    random_copy,
    reference_results,
    summarize,
    teaching_checkpoint,
    teaching_data,
    teaching_samples,
    teaching_test_settings,
    teaching_transform,
)

pytestmark = pytest.mark.usefixtures("one_thread")
#: The least relay lift the trained short-range map must show (measured on the shipped model: see its test).
RELAY_LIFT = 3.0


@pytest.fixture(scope="module")
def shipped():
    return load_model(teaching_checkpoint()).eval()


def predictions(model, samples) -> list[np.ndarray]:
    transform = teaching_transform()
    with torch.no_grad():
        return [model(transform(sample["image"])[None]).argmax(1)[0].numpy() for sample in samples]


def test_the_shipped_checkpoint_is_the_small_isa_teaching_model(shipped):
    assert SHIPPED_CHECKPOINT.stat().st_size < 4 * 2**20
    config = shipped.config
    assert (config.head, config.depth, config.backbone_width, config.down_factor) == ("isa", 10, 16, (8, 8))
    meta = torch.load(SHIPPED_CHECKPOINT, weights_only=True)["meta"]
    assert meta["recipe"] == "teaching" and "SYNTHETIC" in meta["note"] and meta["task"] == "context"
    assert meta["config"]["lr"] == TEACHING.lr and meta["iter"] == TEACHING.iters


@pytest.fixture(scope="module")
def step_mious(shipped) -> dict:
    """Validation mIoU of the shipped model intact and with each step's attention replaced by identity."""
    dataset = build_dataset("folder", teaching_data(quiet=True), "val", progress=False)
    return {step: evaluate_identity_step(shipped, dataset, teaching_test_settings(), step, progress=False)["mIoU"]
            for step in (None, *STEP_OPTIONS)}


def test_it_learnt_the_relay_task_and_needs_both_steps(step_mious):
    """The relay task's targets on the shipped model: it learnt (>= 85; no context gives about 50), and without
    either step's attention it loses at least 15 mIoU points, so both hops carry the cue."""
    meta = torch.load(SHIPPED_CHECKPOINT, weights_only=True)["meta"]
    assert step_mious[None] >= 85 and abs(step_mious[None] - meta["val_mIoU"]) < 0.01, step_mious
    for step in STEP_OPTIONS:
        assert step_mious[None] - step_mious[step] >= 15, (step, step_mious)


def test_its_short_range_step_relays_the_cue_and_random_weights_do_not(shipped):
    """Object pixels whose long-range group holds no beacon pixel: the trained short-range map puts several times
    the uniform share of its weight on its block's relay pixels; random weights put about the uniform share."""
    samples = teaching_samples()[:8]
    lifts = {name: relay_over_images(model, samples, teaching_transform(), [BEACON], TEAM_CLASSES)
             for name, model in (("trained", shipped), ("random", random_copy(shipped)))}
    assert lifts["trained"].queries > 100 and lifts["trained"].lift >= RELAY_LIFT, lifts
    assert 0.8 <= lifts["random"].lift <= 1.25, lifts


def test_the_cue_reaches_objects_most_through_the_composed_map(shipped):
    """On the relay task the cue comes in two hops: the composed map (short range after long range) puts at least
    twice the uniform share of its weight on the beacon and the object's team, more than the long-range map alone
    (whose lift depends on the seed: 0.59 to 3.96 over sweep A, benchmarks/README.md, since a long-range group
    holds pixels of the object's own team wherever the object spans blocks). Random weights lift no map."""
    samples = teaching_samples()[:8]
    trained = cue_attention(shipped, samples, teaching_transform(), queries=64).balanced()
    random = cue_attention(random_copy(shipped), samples, teaching_transform(), queries=64).balanced()
    assert trained["composed"].lift >= 2.0, trained["composed"]
    assert trained["composed"].lift > trained["long_range"].lift, (trained["composed"], trained["long_range"])
    for name in ("long_range", "short_range", "composed"):
        assert 0.9 <= random[name].lift <= 1.1, (name, random[name])


def test_the_reference_results_are_the_relay_task_over_many_seeds():
    """The notebooks' reference run (benchmarks/context_experiment.py on the relay task): ISA over ten seeds with
    its learn flags and identity steps, and the heads it is compared with (dense, none, window) over several."""
    result = reference_results()
    summary = summarize(result["rows"])
    assert result["task"] == "context" and result["recipe"] == "teaching"
    assert result["recipe_settings"]["warmup_iters"] == TEACHING.warmup_iters
    assert set(summary) == {"isa", "dense", "none", "ccnet", "axial", "window", "strided"}
    assert all(len(summary[head]["seeds"]) >= 10 for head in ("isa", "dense", "none", "window"))
    assert all(len(values["seeds"]) >= 3 for values in summary.values())
    # the targets of the issue that asked for the run: ISA learns on >= 9 of 10 seeds, ISA and dense each read the
    # beacon (>= 15 points above none), and window, whose attention cannot reach the beacon, is below ISA on
    # every seed
    assert summary["isa"]["learnt"] >= 0.9 * len(summary["isa"]["seeds"])
    gap = gaps(summary)
    assert gap["isa"] >= 15 and gap["dense"] >= 15, gap
    assert max(summary["window"]["mIoU"]) < min(summary["isa"]["mIoU"])
    assert all("identity_step" in row for row in result["rows"] if row["head"] == "isa")
    assert "SYNTHETIC" in result["data"] and result["machine"]
    one_hop = reference_results(ONE_HOP_RESULTS)
    assert one_hop["task"] == "context-one-hop" and all("identity_step" in row for row in one_hop["rows"])


@pytest.mark.slow
def test_the_script_reproduces_the_shipped_checkpoint(shipped, step_mious, tmp_path):
    """A full teaching run (about four CPU-minutes; ``pytest -m slow``): the same recipe, seed and data give the
    same model up to the rounding of another CPU's kernels: its mIoU within 1.5 points, its predictions equal on
    98 % of the validation pixels, and it needs both steps too. Only with the OpenCV it was made with: another
    one's colour rounding sends the run elsewhere."""
    assert cv2.__version__ == OPENCV_VERSION, (
        f"the shipped teaching model was made with OpenCV {OPENCV_VERSION}, this is {cv2.__version__}: install "
        "the pinned opencv-python-headless (python3 kit.py test does) or remake the teaching assets")
    spec = importlib.util.spec_from_file_location("make_teaching", REPO_BENCHMARKS / "make_teaching_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    row = module.make_teaching_checkpoint(tmp_path / "again.pth")
    again = load_model(tmp_path / "again.pth").eval()
    samples = teaching_samples()
    agree = np.mean([np.mean(a == b) for a, b in zip(predictions(shipped, samples), predictions(again, samples))])
    assert agree >= 0.98 and abs(row["mIoU"] - step_mious[None]) <= 1.5, (agree, row["mIoU"], step_mious[None])


def test_the_cached_task_folder_is_keyed_by_kind_and_geometry(tmp_path):
    """An older checkout's ``context_seed0`` (one-hop pictures written as "context") is never read as the relay
    task: each kind has its own folder, named by its beacon size, and SAMPLE_DATA.txt says which it is."""
    (tmp_path / "data" / "samples" / "context_seed0").mkdir(parents=True)
    folders = {task: teaching_data(tmp_path, quiet=True, task=task) for task in ("context", "context-one-hop")}
    assert {task: folder.name for task, folder in folders.items()} == {
        "context": "context-16px_seed0", "context-one-hop": "context-one-hop-32px_seed0"}
    for task, folder in folders.items():
        notice = (folder / "SAMPLE_DATA.txt").read_text()
        assert f"({task}, seed 0, 96 train / 24 val images)" in notice and "SYNTHETIC" in notice
    assert teaching_data(tmp_path, quiet=True) == folders["context"]  # written once, then reused
    with pytest.raises(ValueError, match="unknown context task 'relay'"):
        teaching_data(tmp_path, task="relay")


def test_learn_rates_identity_steps_and_stalled_curves_are_read_from_a_reference_run():
    from isanet.notebook.plots import plot_run_curves
    from isanet.notebook.teaching import format_summary, identity_step_table

    rows = [{"head": "isa", "seed": 0, "mIoU": 92.0, "cpu_s": 240.0, "learnt": True, "iters": 1000,
             "curve": [{"iter": 100, "mIoU": 50.0}, {"iter": 1000, "mIoU": 92.0}],
             "identity_step": {"long-range": 41.0, "short-range": 45.5}},
            {"head": "isa", "seed": 1, "mIoU": 70.5, "cpu_s": 250.0, "learnt": False, "iters": 1000,
             "curve": [{"iter": 100, "mIoU": 40.0}, {"iter": 1000, "mIoU": 70.5}],
             "identity_step": {"long-range": 46.0, "short-range": 47.0}},
            {"head": "none", "seed": 0, "mIoU": 50.0, "cpu_s": 200.0, "iters": 1000, "curve": []}]
    summary = summarize(rows)
    assert summary["isa"]["learnt"] == 1 and summary["none"]["learnt"] is None  # none's row predates the field
    table = format_summary(summary).splitlines()
    assert table[2].startswith("| isa | 81.25 | 1/2 | 21.50 | 92.00, 70.50 |")
    assert table[3].startswith("| none | 50.00 | - |")
    steps = identity_step_table({"task": "context", "rows": rows}).splitlines()
    assert steps[2] == "| context | 0 | 92.00 | 41.00 | 45.50 | 51.0 / 46.5 |" and len(steps) == 4
    figure = plot_run_curves(rows[:2], title="t")
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["seed 0 (learnt)", "seed 1 (stalled)"]
    assert list(lines[1].get_ydata()) == [40.0, 70.5] and lines[1].get_color() != lines[0].get_color()


def test_one_team_mious_score_the_guess_of_one_team_for_every_object():
    """A 4 x 4 label: background, one beacon pixel, 4 red and 2 green object pixels, one ignored pixel. Guessing red
    keeps background and beacon (IoU 1), red 4 / 6, green 0, blue absent from both (NaN, left out): 66.67;
    guessing green: red 0, green 2 / 6: 58.33; guessing blue adds a blue class predicted but never labelled (IoU 0):
    40.00."""
    label = np.zeros((4, 4), np.int64)
    label[0, 0] = 1
    label[1, :] = 2
    label[2, :2] = 3
    label[3, 3] = 255
    assert one_team_mious(iter([label])) == {"red team": 66.67, "green team": 58.33, "blue team": 40.0}
