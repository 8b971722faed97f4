"""The trainer: recipe arithmetic, exact resume after a kill, DDP replicas, --init, the log, and bad input.

Everything trains the tiny R-18 ISANet on 64x64 crops of a 64-px synthetic VOC sample, a few iterations at a
time, on one CPU thread, so the whole file stays well under a couple of minutes on a small machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import isanet
from isanet.cli import main
from isanet.data.registry import write_sample_dataset
from isanet.data.sample_checkpoint import random_state_dict
from isanet.engine.config import plain
from isanet.engine.loader import SampleOrder, StreamBatches
from isanet.engine.log import read_log
from isanet.engine.recipes import get_recipe
from isanet.engine.run_setup import WARMUP_START_FACTOR, PolySchedule, warmup_factor
from isanet.engine.state import find_resume_checkpoint
from isanet.engine.trainer import (
    TrainConfig,
    Trainer,
    TrainError,
    poly_lr,
    resolve_config,
    seg_losses,
    train,
)
from isanet.io.checkpoint import save_checkpoint
from isanet.models.config import TINY
from isanet.notebook.plots import plot_training_curves

REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory) -> Path:
    top = write_sample_dataset("voc", tmp_path_factory.mktemp("voc"), num_train=4, num_val=2, size=64)
    return top.parent


def tiny_config(voc_root: Path, work_dir: Path, **changes) -> TrainConfig:
    config = TrainConfig(data_root=voc_root, work_dir=work_dir, iters=6, crop_size=(64, 64), batch_size=2,
                         resize_scale=(256, 64), val_scale=(256, 64), save_every=2, eval_every=3,
                         model_overrides=TINY, progress=False, device="cpu")
    return replace(config, **changes)


def tiny_checkpoint(path: Path, num_classes: int, depth: int = 18, seed: int = 3) -> dict:
    model = isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=num_classes, depth=depth))
    state = random_state_dict(model, seed=seed)
    model.load_state_dict(state)
    save_checkpoint(model, path, meta={"note": "test"})
    return state


# ---- the recipe's arithmetic ----

def test_poly_lr_matches_mmengine_at_known_iterations():
    assert poly_lr(0, 20000, 0.01) == 0.01
    assert poly_lr(10000, 20000, 0.01) == pytest.approx(0.0099 * 0.5 ** 0.9 + 1e-4, abs=1e-15)
    assert poly_lr(20000, 20000, 0.01) == pytest.approx(1e-4, abs=1e-15)
    assert poly_lr(25000, 20000, 0.01) == pytest.approx(1e-4, abs=1e-15)  # clamped past the end, as mmengine
    lr = 0.01  # mmengine's chainable form, step by step, agrees with the closed form we use
    for step in range(1, 50):
        lr = (lr - 1e-4) * (1 - 1 / (50 - step + 1)) ** 0.9 + 1e-4
        assert lr == pytest.approx(poly_lr(step, 50, 0.01), rel=1e-12)


def test_a_warm_up_multiplies_the_poly_rate_by_mmengines_linear_factor():
    schedule = PolySchedule(0.02, 1000, 1e-4, 0.9, warmup_iters=100)
    assert schedule.lr(0) == pytest.approx(0.002, rel=1e-12)  # 0.1 x the poly rate at 0, which is 0.02
    assert schedule.lr(50) == pytest.approx(poly_lr(50, 1000, 0.02) * 0.55, rel=1e-12)  # 0.1 + 0.9 * 50/100
    assert schedule.lr(100) == poly_lr(100, 1000, 0.02) and schedule.lr(700) == poly_lr(700, 1000, 0.02)
    factor = WARMUP_START_FACTOR  # mmengine's LinearLR, step by step: factor_i / factor_(i-1)
    for step in range(1, 100):
        factor *= 1 + 0.9 / (100 * 0.1 + (step - 1) * 0.9)
        assert factor == pytest.approx(warmup_factor(step, 100), rel=1e-12)
    linear, poly = schedule.state(40)
    assert (linear["type"], linear["end"], linear["last_step"], linear["start_factor"]) == ("LinearLR", 100, 40, 0.1)
    assert (poly["type"], poly["end"], poly["last_step"]) == ("PolyLR", 1000, 40)
    assert [entry["type"] for entry in PolySchedule(0.02, 1000, 1e-4, 0.9).state(40)] == ["PolyLR"]


def test_loss_is_ce_plus_0_4_aux_with_ignore_averaged_like_mmseg():
    logits = torch.tensor([[[[2.0, 0.0, 1.0, -1.0]], [[0.0, 1.0, 3.0, 0.5]], [[1.0, 2.0, 0.0, 2.0]]]])  # 1x3x1x4
    aux = logits.flip(1)
    label = torch.tensor([[[0, 2, 255, 1]]])

    def manual(scores: torch.Tensor, over: int) -> float:
        total = 0.0
        for pixel, target in ((0, 0), (1, 2), (3, 1)):  # pixel 2 is ignored
            column = scores[0, :, 0, pixel]
            total += -(column[target] - torch.logsumexp(column, 0)).item()
        return total / over

    losses = seg_losses(logits, aux, label)
    assert losses["decode.loss_ce"].item() == pytest.approx(manual(logits, 4), rel=1e-6)  # mmseg: / all pixels
    assert losses["aux.loss_ce"].item() == pytest.approx(0.4 * manual(aux, 4), rel=1e-6)
    assert losses["loss"].item() == pytest.approx(manual(logits, 4) + 0.4 * manual(aux, 4), rel=1e-6)
    non_ignore = seg_losses(logits, aux, label, avg_non_ignore=True)
    assert non_ignore["decode.loss_ce"].item() == pytest.approx(manual(logits, 3), rel=1e-6)


def test_sample_stream_is_sharded_once_and_reshuffled_per_epoch():
    ranks = [list(StreamBatches(start=6, num_batches=3, batch_size=2, rank=r, world_size=2)) for r in range(2)]
    positions = sorted(p for batches in ranks for batch in batches for p in batch)
    assert positions == list(range(6, 18)) and ranks[1][0] == [7, 9]
    order = SampleOrder(5, seed=1)
    epochs = [[order.index(e * 5 + i) for i in range(5)] for e in range(3)]
    assert all(sorted(epoch) == list(range(5)) for epoch in epochs) and epochs[0] != epochs[1]
    assert [SampleOrder(5, seed=1).index(p) for p in range(15)] == sum(epochs, [])


# ---- exact resume ----

@pytest.fixture(scope="module")
def uninterrupted(voc_root, tmp_path_factory) -> tuple[Path, dict]:
    work_dir = tmp_path_factory.mktemp("straight") / "run"
    return work_dir, train(tiny_config(voc_root, work_dir))


def test_killed_and_resumed_run_logs_the_same_losses(voc_root, tmp_path, uninterrupted, capsys):
    straight_dir, straight = uninterrupted
    work_dir = tmp_path / "run"

    def kill_at_5(record: dict) -> None:
        if record["iter"] == 5:  # after checkpoint 4, with iteration 5 already in the log
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(voc_root, work_dir), on_log=kill_at_5)
    assert "interrupted after iteration 5" in capsys.readouterr().err
    assert len(read_log(work_dir / "log.jsonl")) == 5
    resumed = train(TrainConfig(work_dir=work_dir, data_root=voc_root, resume=True, progress=False, device="cpu"))
    assert resumed["start_iter"] == 4 and resumed["iter"] == 6
    a, b = read_log(straight_dir / "log.jsonl"), read_log(work_dir / "log.jsonl")
    assert [r["iter"] for r in b] == [1, 2, 3, 4, 5, 6]  # the killed run's line 5 was dropped, then rewritten
    for key in ("loss", "decode.loss_ce", "aux.loss_ce", "lr", "decode.acc_seg", "mIoU"):
        assert [r.get(key) for r in a] == [r.get(key) for r in b], key
    assert resumed["param_sha256"] == straight["param_sha256"]
    assert not list(work_dir.glob(".*tmp"))


def test_data_workers_change_nothing(voc_root, tmp_path, uninterrupted):
    straight_dir, _ = uninterrupted
    train(tiny_config(voc_root, tmp_path / "run", num_workers=2, stop_after=2, eval_every=0))
    with_workers, straight = read_log(tmp_path / "run" / "log.jsonl"), read_log(straight_dir / "log.jsonl")[:2]
    assert [r["loss"] for r in with_workers] == [r["loss"] for r in straight]


def test_checkpoints_are_mmseg_format_and_log_is_plottable(uninterrupted):
    work_dir, summary = uninterrupted
    assert sorted(p.name for p in work_dir.glob("*.pth")) == ["iter_2.pth", "iter_4.pth", "iter_6.pth", "latest.pth"]
    content = torch.load(work_dir / "latest.pth", weights_only=True)
    assert {"meta", "state_dict", "optimizer", "param_schedulers", "sampler", "rng"} <= set(content)
    assert content["meta"]["iter"] == 6 and content["meta"]["seed"] == 0
    assert content["meta"]["dataset_meta"]["classes"][0] == "background"
    assert content["sampler"]["position"] == 6 * 2
    model = isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=21))
    isanet.load_checkpoint(model, work_dir / "iter_6.pth")  # what mmseg's loader reads, strictly
    records = read_log(work_dir / "log.jsonl")
    assert all({"iter", "loss", "lr"} <= set(r) for r in records) and records[2]["mIoU"] is not None
    assert records[0]["lr"] == poly_lr(0, 6, 0.01) and records[5]["lr"] == poly_lr(5, 6, 0.01)
    with (work_dir / "log.jsonl").open("a") as handle:
        handle.write('{"iter": 7, "lo')  # a half-written line from a kill
    assert len(read_log(work_dir / "log.jsonl")) == 6
    import matplotlib
    matplotlib.use("Agg")
    loss_ax, miou_ax = plot_training_curves(work_dir / "log.jsonl")
    assert loss_ax.lines and miou_ax.lines and summary["last_eval"]["iter"] == 6


def test_resume_refuses_a_different_seed_and_fills_the_rest(voc_root, uninterrupted):
    work_dir, _ = uninterrupted
    with pytest.raises(TrainError, match="seed=0 but this run asks for seed=1"):
        Trainer(TrainConfig(work_dir=work_dir, data_root=voc_root, resume=True, seed=1, device="cpu"))
    trainer = Trainer(TrainConfig(work_dir=work_dir, data_root=voc_root, resume=True, iters=8, device="cpu",
                                  progress=False))
    try:
        assert trainer.config.crop_size == (64, 64) and trainer.config.model_overrides == TINY
        assert trainer.state.start_iter == 6 and trainer.config.iters == 8
    finally:
        trainer.close()


def test_the_warm_up_is_recorded_and_a_resume_keeps_it_or_refuses_another():
    entry = isanet.get_entry("isanet_r50-d8_4xb4-20k_voc12aug-512x512")
    fresh = resolve_config(TrainConfig(data_root="d", work_dir="w", recipe="teaching"), entry)
    assert fresh.warmup_iters == get_recipe("teaching").warmup_iters
    saved = plain(vars(fresh))  # what a checkpoint's meta["config"] holds
    with pytest.raises(TrainError, match=rf"warmup_iters={fresh.warmup_iters} but this run asks for warmup_iters=7;"):
        resolve_config(TrainConfig(data_root="d", work_dir="w", resume=True, warmup_iters=7), entry, saved)
    assert resolve_config(TrainConfig(data_root="d", work_dir="w", resume=True), entry, saved).warmup_iters == \
        fresh.warmup_iters
    older = {key: value for key, value in saved.items() if key != "warmup_iters"}  # before the field existed
    assert resolve_config(TrainConfig(data_root="d", work_dir="w", resume=True), entry, older).warmup_iters == 0
    assert resolve_config(TrainConfig(data_root="d", work_dir="w"), entry).warmup_iters == 0  # the zoo's: none


def test_resume_picks_the_newest_checkpoint_even_if_latest_lags(tmp_path):
    for name in ("iter_2.pth", "iter_10.pth", "latest.pth"):  # killed between iter_10.pth and re-linking latest
        (tmp_path / name).write_bytes(b"x")
    assert find_resume_checkpoint(tmp_path) == tmp_path / "iter_10.pth"
    for name in ("iter_2.pth", "iter_10.pth"):
        (tmp_path / name).unlink()
    assert find_resume_checkpoint(tmp_path) == tmp_path / "latest.pth"


# ---- DDP ----

DDP_SCRIPT = """
import json, os, sys
import torch
torch.set_num_threads(1)
from isanet.engine.trainer import TrainConfig, train
summary = train(TrainConfig(**json.loads(sys.argv[1])))
with open(os.path.join(sys.argv[2], f"rank{summary['rank']}.json"), "w") as handle:
    json.dump(summary, handle)
"""


def test_ddp_two_cpu_processes_keep_identical_replicas(voc_root, tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    config = dict(data_root=str(voc_root), work_dir=str(tmp_path / "run"), iters=3, crop_size=[64, 64],
                  batch_size=2, resize_scale=[256, 64], save_every=3, eval_every=0, model_overrides=TINY,
                  progress=False, device="cpu", sync_bn=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(script), json.dumps(config), str(tmp_path)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [s["world_size"] for s in ranks] == [2, 2]
    assert ranks[0]["param_sha256"] == ranks[1]["param_sha256"]
    records = read_log(tmp_path / "run" / "log.jsonl")
    assert [r["iter"] for r in records] == [1, 2, 3]  # rank 0 alone writes
    assert torch.load(tmp_path / "run" / "iter_3.pth", weights_only=True)["sampler"]["position"] == 3 * 2 * 2
    assert "TrainConfig.sync_bn is ignored on CPU" in result.stderr


# ---- --init ----

def _parameters_equal(model: torch.nn.Module, state: dict, prefix: str = "") -> bool:
    return all(torch.equal(value, state[prefix + key]) for key, value in model.state_dict().items())


def test_init_from_a_cityscapes_checkpoint_reinitialises_the_classifier(voc_root, tmp_path):
    state = tiny_checkpoint(tmp_path / "cityscapes.pth", num_classes=19)
    trainer = Trainer(tiny_config(voc_root, tmp_path / "run", init=tmp_path / "cityscapes.pth"))
    try:
        assert "classifier re-initialised for 21 classes" in trainer.state.init_report
        assert "decode_head.conv_seg.weight" in trainer.state.init_report
        model = trainer.state.bare_model
        assert model.decode_head.conv_seg.weight.shape[0] == 21
        assert _parameters_equal(model.backbone, state, "backbone.")
        assert torch.equal(model.decode_head.in_conv.conv.weight, state["decode_head.in_conv.conv.weight"])
    finally:
        trainer.close()


@pytest.mark.parametrize("prefix", ["backbone.", ""])
def test_init_from_an_imagenet_backbone_loads_the_backbone_only(voc_root, tmp_path, prefix):
    backbone = isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=21)).backbone
    state = {prefix + key: value for key, value in random_state_dict(backbone, seed=5).items()}
    state[prefix + "fc.weight"] = torch.zeros(1000, 512)
    torch.save({"state_dict": state} if prefix else state, tmp_path / "resnet.pth")
    trainer = Trainer(tiny_config(voc_root, tmp_path / "run", init=tmp_path / "resnet.pth"))
    try:
        assert "backbone only" in trainer.state.init_report and "fc.weight" in trainer.state.init_report
        assert _parameters_equal(trainer.state.bare_model.backbone, state, prefix)
    finally:
        trainer.close()


# ---- bad input: one line naming what is wrong ----

def cli_error(capsys, *argv: str) -> str:
    assert main(["train", *map(str, argv)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "TrainConfig." not in err  # the command names its options, not the fields they set
    return err


def test_bad_inputs_are_one_line_errors(voc_root, tmp_path, capsys, uninterrupted):
    name = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"
    used, _ = uninterrupted
    err = cli_error(capsys, name, "--data-root", voc_root, "--work-dir", used)
    assert f"--work-dir {used} already holds a run" in err and "--resume" in err
    err = cli_error(capsys, name, "--data-root", voc_root, "--work-dir", tmp_path / "empty", "--resume")
    assert err.endswith("start a fresh run without --resume") and "no checkpoint in" in err
    bare = tmp_path / "bare" / "VOC2012"
    (bare / "JPEGImages").mkdir(parents=True)
    err = cli_error(capsys, name, "--data-root", bare, "--work-dir", tmp_path / "w1")
    assert err.startswith(f"isanet train: error: --data-root {bare}: no usable 'train' split") and "train.txt" in err
    tiny_checkpoint(tmp_path / "r18.pth", num_classes=21)
    err = cli_error(capsys, name, "--data-root", voc_root, "--work-dir", tmp_path / "w2", "--init",
                    tmp_path / "r18.pth", "--device", "cpu")
    assert "--init: checkpoint" in err and "ResNet-18, the model a ResNet-50" in err
    with pytest.raises(TrainError, match=r"^TrainConfig\.iters 0: out of range, expected at least 1$"):
        train(tiny_config(voc_root, tmp_path / "w3", iters=0))  # the CLI refuses it in argparse already
    with pytest.raises(TrainError, match=r"^TrainConfig\.resume: no checkpoint in .*start a fresh run without "
                                         r"TrainConfig\.resume$"):  # the same refusal as the CLI's above
        train(tiny_config(voc_root, tmp_path / "empty", resume=True))


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("iters", 0, "at least 1"), ("batch_size", 0, "at least 1"), ("crop_size", (4, 64), "(height, width), each 8 to"),
    ("lr", math.inf, "a finite number above 0"), ("lr", 0.0, "a finite number above 0"),
    ("save_every", 0, "at least 1"), ("eval_every", -1, "at least 0"), ("keep_checkpoints", 0, "None (keep all)"),
    ("num_workers", -1, "at least 0"), ("warmup_iters", -1, "at least 0 (0: no warm-up)")])
def test_python_callers_read_the_field_they_set(field, value, expected):
    config = TrainConfig(data_root="d", work_dir="w", **{field: value})
    with pytest.raises(TrainError, match=rf"^TrainConfig\.{field} {re.escape(str(value))}: out of range, expected "
                                         rf"{re.escape(expected)}"):
        resolve_config(config, isanet.get_entry(config.name))


def test_amp_is_ignored_on_cpu_and_the_cli_trains(voc_root, tmp_path, capsys, monkeypatch):
    """The whole CLI path, with the zoo's R-50 swapped for the tiny model to keep it fast."""
    monkeypatch.setattr("isanet.engine.run_setup.build_model",
                        lambda name, num_classes, **_: isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=num_classes)))
    code = main(["train", "isanet_r50-d8_4xb4-20k_voc12aug-512x512", "--data-root", str(voc_root), "--work-dir",
                 str(tmp_path / "run"), "--iters", "2", "--crop", "64", "64", "--batch-size", "1", "--eval-every",
                 "0", "--amp", "--device", "cpu", "--no-progress", "--keep", "1", "--save-every", "1", "--sync-bn"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "--amp is ignored on CPU" in captured.err and "trained to iteration 2/2" in captured.out
    assert "--sync-bn is ignored on CPU" in captured.err  # the trainer's notes name the options too
    assert sorted(p.name for p in (tmp_path / "run").glob("*.pth")) == ["iter_2.pth", "latest.pth"]
    assert math.isfinite(read_log(tmp_path / "run" / "log.jsonl")[-1]["loss"])


def test_the_deprecated_amp_option_is_a_precision(monkeypatch, capsys):
    from isanet.cli.train import amp_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU without bf16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert amp_precision(argparse.Namespace(amp=True, precision=None, device=None)) == "fp16"
    assert capsys.readouterr().err.strip() == "note: --amp is deprecated: training with --precision fp16"
    assert amp_precision(argparse.Namespace(amp=True, precision="bf16", device=None)) == "bf16"  # --precision wins
    assert amp_precision(argparse.Namespace(amp=False, precision=None, device=None)) is None
    assert capsys.readouterr().err == ""


def test_bf16_training_on_cpu_follows_the_fp32_losses(voc_root, tmp_path, uninterrupted, monkeypatch):
    """bf16 autocast (as on a CPU with AVX-512 BF16; the CI's CPU may lack it) trains the same run: the same
    data and weights, losses close to fp32's step by step, and the log says which precision ran."""
    from isanet import runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    summary = train(tiny_config(voc_root, tmp_path / "bf16", precision="bf16", eval_every=0))
    assert summary["precision"] == "bf16" and uninterrupted[1]["precision"] == "fp32"
    fp32 = [r["loss"] for r in read_log(uninterrupted[0] / "log.jsonl") if "loss" in r]
    bf16 = [r["loss"] for r in read_log(tmp_path / "bf16" / "log.jsonl") if "loss" in r]
    assert len(bf16) == len(fp32) == 6
    assert bf16[0] == pytest.approx(fp32[0], rel=0.02)  # same weights and batch: only rounding differs
    assert bf16 != fp32  # it did run in bf16
    assert all(abs(a - b) / b < 0.2 for a, b in zip(bf16, fp32))  # measured: up to 0.1 after a few steps


def test_fp16_on_cpu_trains_in_fp32_and_says_why(voc_root, tmp_path, capsys):
    summary = train(tiny_config(voc_root, tmp_path / "fp16", precision="fp16", iters=1, eval_every=0,
                                save_every=1))
    assert summary["precision"] == "fp32"
    assert "TrainConfig.precision fp16 on cpu: fp16 autocast is for CUDA; on CPU use bf16; running in fp32" in \
        capsys.readouterr().err
