"""What isanet guarantees a careless or hostile user: the list of guarantees, one test (or more) per case.

1. Nothing is destroyed: no output is written over an input or over existing data, a work folder has one
   run at a time, a write killed half-way leaves nothing that stays.
2. No normal-looking number from broken math: non-finite weights are refused at load, a diverging training
   stops, settings that cannot give a meaningful number are refused before any work.
3. Bounded resources: every size is checked against a stated bound (or the memory cap) before allocating.
4. Every argument is checked, and every message is one line naming the argument (or file) and what was expected.
5. Resume does what it says. 6. Files get the user's umask.

Everything runs on the tiny R-18 model and 64-px synthetic data (isanet/data/synthetic.py), on one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import isanet
from isanet.analysis.attention_bench import bench_attention
from isanet.analysis.memory import LiveTensorTracker
from isanet.analysis.probe import capture
from isanet.cli import error_message, main
from isanet.data.datasets import as_rgb_uint8
from isanet.data.registry import build_dataset, write_sample_dataset
from isanet.engine import trainer as trainer_module
from isanet.engine.config import TrainError, resolve_config
from isanet.engine.state import WorkDirLock, write_checkpoint
from isanet.engine.trainer import TrainConfig, train
from isanet.evaluation.evaluate import evaluate
from isanet.evaluation.inference import MemoryCap, Predictor, predict, slide_windows
from isanet.io import atomic
from isanet.io.atomic import atomic_path, write_json_atomic
from isanet.io.checkpoint import CheckpointError, load_model, save_checkpoint
from isanet.io.export import check_memory
from isanet.io.outputs import LEDGER, check_output
from isanet.limits import MAX_IMAGE_SIDE, bounded_float, bounded_int
from isanet.models.config import TINY
from isanet.models.footprint import MemoryCapError
from isanet.notebook.teaching import teaching_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
VOC = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory) -> Path:
    return write_sample_dataset("voc", tmp_path_factory.mktemp("voc"), num_train=4, num_val=2, size=64).parent


def tiny_run(voc_root: Path, work_dir: Path, **changes) -> TrainConfig:
    config = TrainConfig(data_root=voc_root, work_dir=work_dir, iters=4, crop_size=(64, 64), batch_size=1,
                         resize_scale=(256, 64), val_scale=(256, 64), save_every=2, eval_every=0,
                         model_overrides=TINY, progress=False, device="cpu")
    return replace(config, **changes)


def tiny_checkpoint(path: Path, num_classes: int = 21) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=num_classes)), path)


def cli(capsys, *argv) -> tuple[int, str]:
    """Exit status and stderr of ``isanet ARGV`` (argparse refusals included); stderr's last line must be the
    whole message: no traceback."""
    try:
        code = main([str(arg) for arg in argv])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return code, err.splitlines()[-1] if err else ""


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ---------------------------------------------------------------- 1. nothing is destroyed

def test_sample_data_never_writes_into_a_tree_that_is_not_a_sample(tmp_path, capsys):
    top = write_sample_dataset("voc", tmp_path, num_train=2, num_val=2, size=64)
    (top / "SAMPLE_DATA.txt").unlink()  # now it looks like the real data set
    val_list = top / "ImageSets" / "Segmentation" / "val.txt"
    val_list.write_text("my_real_image\n")
    code, err = cli(capsys, "sample-data", "voc", "--out", tmp_path, "--size", 64)
    assert code == 2 and "is not isanet sample data" in err and str(top) in err
    assert val_list.read_text() == "my_real_image\n"


def test_sample_data_replaces_an_earlier_sample_whole(tmp_path):
    top = write_sample_dataset("ade20k", tmp_path, num_train=3, num_val=3, size=64)
    assert len(list((top / "images" / "validation").iterdir())) == 3
    write_sample_dataset("ade20k", tmp_path, num_train=1, num_val=1, size=64)  # fewer: no stale files stay
    assert len(list((top / "images" / "validation").iterdir())) == 1
    assert not [path for path in top.parent.iterdir() if ".isanet-tmp-" in path.name]


def test_sample_checkpoint_never_overwrites_other_weights(tmp_path, capsys):
    trained = tiny_checkpoint(tmp_path / "trained.pth")
    before = trained.read_bytes()
    code, err = cli(capsys, "sample-checkpoint", VOC, "--out", trained)
    assert code == 2 and "not a random-weights sample checkpoint" in err
    assert trained.read_bytes() == before


def test_eval_out_may_not_be_its_own_checkpoint_nor_other_data(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path / "x.pth")
    before = checkpoint.read_bytes()
    code, err = cli(capsys, "eval", VOC, "--checkpoint", checkpoint, "--data-root", tmp_path / "none", "--out",
                    checkpoint)
    assert code == 2 and f"--out {checkpoint}: is also an input" in err  # refused before the (missing) data
    assert checkpoint.read_bytes() == before
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"\x89PNG not json")
    code, err = cli(capsys, "eval", VOC, "--checkpoint", checkpoint, "--data-root", tmp_path / "none", "--out",
                    picture)
    assert code == 2 and "already exists and was not written by isanet" in err
    code, err = cli(capsys, "eval", VOC, "--checkpoint", checkpoint, "--data-root", tmp_path / "none", "--confusion",
                    tmp_path / "cm.txt")
    assert code == 2 and "--confusion" in err and "the format is taken from the suffix; expected .png, got .txt" in err
    user_json = tmp_path / "mine.json"
    user_json.write_text("{}")
    code, err = cli(capsys, "eval", VOC, "--checkpoint", checkpoint, "--data-root", tmp_path / "none", "--out",
                    user_json)
    assert code == 2 and "already exists and was not written by isanet" in err
    write_json_atomic({"mIoU": 1.0}, tmp_path / "old.json")  # an earlier result may be replaced
    assert check_output(tmp_path / "old.json", "--out", suffixes=(".json",)) == (tmp_path / "old.json").resolve()


def test_a_work_dir_holds_one_run_at_a_time(tmp_path, voc_root):
    lock_file = tmp_path / "run" / WorkDirLock.NAME
    lock_file.parent.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a run in another process
    try:
        lock_file.write_text(f"{other.pid} {socket.gethostname()}\n")
        with pytest.raises(TrainError, match=rf"is in use by another run \(pid {other.pid} on "):
            train(tiny_run(voc_root, tmp_path / "run"))
    finally:
        other.kill()
        other.wait()
    assert not (tmp_path / "run" / "log.jsonl").exists()  # the second run wrote nothing
    lock_file.write_text(f"{dead_pid()} {socket.gethostname()}\n")  # a killed run's lock is stale
    summary = train(tiny_run(voc_root, tmp_path / "run", iters=2))
    assert summary["iter"] == 2 and not lock_file.exists()  # taken over, then freed
    held = WorkDirLock(tmp_path / "run").acquire()  # a notebook's Trainer that was never closed
    with pytest.raises(TrainError, match="in use by another run in this same process .*close()"):
        train(tiny_run(voc_root, tmp_path / "run", resume=True))
    held.release()


def test_a_refused_run_leaves_no_folder_behind(tmp_path, voc_root):
    with pytest.raises(TrainError, match="no usable 'train' split"):
        train(tiny_run(tmp_path / "no_data", tmp_path / "new" / "run"))
    assert not (tmp_path / "new" / "run").exists()


def test_temporaries_of_killed_writers_are_removed_on_the_next_write(tmp_path):
    dead = tmp_path / f".iter_4.pth.isanet-tmp-{dead_pid()}-0123abcd.tmp"
    live = tmp_path / f".iter_6.pth.isanet-tmp-{os.getpid()}-0123abcd.tmp"  # a write in progress (ours)
    old_style = tmp_path / ".iter_2.pth.isanet-tmp-89abcdef.tmp"  # older name without pid, from before we started
    unrelated = tmp_path / "notes.tmp"
    for path in (dead, live, old_style, unrelated):
        path.write_bytes(b"x" * 1000)
    os.utime(old_style, (0, 0))
    write_json_atomic({"ok": True}, tmp_path / "result.json")
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == sorted([live.name, unrelated.name, "result.json", LEDGER])


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path):
    write_json_atomic({"v": 1}, tmp_path / "a.json")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.json") as temporary:
        temporary.write_text('{"v": ')
        raise RuntimeError("killed")
    assert json.loads((tmp_path / "a.json").read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [LEDGER, "a.json"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_one_line_naming_the_file_and_its_folder(tmp_path, monkeypatch, capsys):
    """Every write to /dev/full fails for want of space: with the kit's temporary linked there, a checkpoint and a
    --json output fail as on a full disk, said in the kit's words (not torch's "unexpected pos", nor the
    temporary's name), and leave nothing behind."""
    monkeypatch.setattr(atomic.uuid, "uuid4", lambda: uuid.UUID(int=0))  # the temporary's name, known in advance

    def full(name: str) -> Path:
        (tmp_path / f".{name}{atomic.TEMPORARY_MARK}{os.getpid()}-00000000.tmp").symlink_to("/dev/full")
        return tmp_path / name

    with pytest.raises(OSError) as caught:
        tiny_checkpoint(full("model.pth"))
    assert error_message(caught.value) == f"{tmp_path / 'model.pth'}: no space left on {tmp_path}"
    code, err = cli(capsys, "bench", "attention", "--sizes", 8, "--channels", 8, "--isa-channels", 4, "--down-factor",
                    4, 4, "--repeats", 1, "--json", full("rows.json"))
    assert (code, err) == (1, f"isanet bench: error: {tmp_path / 'rows.json'}: no space left on {tmp_path}")
    assert [path.name for path in tmp_path.iterdir() if path.name != LEDGER] == []


@pytest.mark.parametrize("given", ["", ".", ".."])
def test_an_output_path_that_names_no_file_is_refused_in_the_kits_words(tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path / "..")  # was: "PosixPath('.') has an empty name"
    with pytest.raises(ValueError, match=re.escape(f"cannot write {given!r}: it names no file (expected a file name)")):
        write_json_atomic({}, given)
    with pytest.raises(ValueError, match="it names no file"):
        isanet.save_checkpoint(isanet.ISANet(isanet.ISANetConfig.tiny()), given)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 2. no normal-looking number from broken math

def test_non_finite_weights_are_refused_at_load_naming_the_tensor(tmp_path):
    model = isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=21))
    with torch.no_grad():
        model.decode_head.conv_seg.weight[0, 0] = float("nan")
        model.backbone.stem[0].weight[1, 0, 0, 0] = float("inf")
    path = save_checkpoint(model, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"broken\.pth: tensor backbone\.stem\.0\.weight holds 1 non-finite"):
        isanet.load_checkpoint(isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=21)), path)
    with pytest.raises(CheckpointError, match="non-finite"):
        load_model(path)


def test_a_diverging_training_stops_and_keeps_the_last_good_checkpoint(tmp_path, voc_root, monkeypatch):
    real = trainer_module.seg_losses
    calls = []

    def diverging(*args, **kwargs):  # the loss of the third iteration is NaN, as with --lr 1e6
        losses = real(*args, **kwargs)
        calls.append(1)
        return {**losses, "loss": losses["loss"] * float("nan")} if len(calls) == 3 else losses

    monkeypatch.setattr(trainer_module, "seg_losses", diverging)
    with pytest.raises(TrainError, match=r"iteration 3: the loss is nan .*diverged.*last good checkpoint is .*iter_2"):
        train(tiny_run(voc_root, tmp_path / "run", iters=6))
    assert sorted(path.name for path in (tmp_path / "run").glob("*.pth")) == ["iter_2.pth", "latest.pth"]
    isanet.load_checkpoint(isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=21)), tmp_path / "run" / "iter_2.pth")
    assert not (tmp_path / "run" / WorkDirLock.NAME).exists()


def test_non_finite_weights_are_never_saved_over_good_ones(tmp_path):
    model = isanet.ISANet(isanet.ISANetConfig.tiny())
    write_checkpoint(model, tmp_path, 2, {"iter": 2}, keep=1)
    with torch.no_grad():
        model.decode_head.conv_seg.bias.fill_(float("inf"))
    with pytest.raises(TrainError, match="after iteration 4: tensor decode_head.conv_seg.bias .*earlier checkpoints"):
        write_checkpoint(model, tmp_path, 4, {"iter": 4}, keep=1)
    assert sorted(path.name for path in tmp_path.iterdir()) == [LEDGER, "iter_2.pth", "latest.pth"]


@pytest.mark.parametrize("lr", ["inf", "nan", "-1", "0", "1e6"])
def test_a_learning_rate_that_cannot_train_is_refused(capsys, lr):
    code, err = cli(capsys, "train", VOC, "--data-root", "d", "--work-dir", "w", "--lr", lr)
    assert code == 2 and err.startswith("isanet train: error: argument --lr:") and "finite number above 0" in err


def test_sliding_windows_never_leave_pixels_unpredicted():
    with pytest.raises(ValueError, match=r"stride \(40, 40\) is larger than crop_size \(32, 32\)"):
        slide_windows(100, 100, (32, 32), (40, 40))
    with pytest.raises(ValueError, match="larger than crop_size"):
        predict(isanet.ISANet(isanet.ISANetConfig.tiny()), torch.zeros(1, 3, 64, 64), "slide", (32, 32), (33, 8))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 90), st.integers(1, 90), st.integers(1, 40), st.integers(1, 40), st.data())
def test_every_allowed_window_grid_covers_every_pixel(height, width, crop_h, crop_w, data):
    stride = (data.draw(st.integers(1, crop_h)), data.draw(st.integers(1, crop_w)))
    count = np.zeros((height, width), int)
    for y1, y2, x1, x2 in slide_windows(height, width, (crop_h, crop_w), stride):
        count[y1:y2, x1:x2] += 1
    assert count.min() >= 1


def test_zero_classes_is_refused():
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        isanet.build_model(VOC, num_classes=0)


def test_evaluating_nothing_is_refused(voc_root, capsys):
    code, err = cli(capsys, "eval", VOC, "--checkpoint", "x.pth", "--data-root", voc_root, "--limit", 0)
    assert code == 2 and "argument --limit: 0 is out of range" in err
    dataset = build_dataset("voc", voc_root, "val")
    settings_ = isanet.get_entry(VOC).test.replace(scale=(64, 64))
    with pytest.raises(ValueError, match="limit 0: evaluate at least one image"):
        evaluate(isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=21)), dataset, settings_, limit=0, progress=False)


def test_slide_mode_without_windows_is_refused_before_any_image(voc_root):
    class Untouchable(torch.nn.Module):
        num_classes = 21

        def forward(self, x):
            raise AssertionError("no image may be predicted")

    dataset = build_dataset("voc", voc_root, "val")
    with pytest.raises(ValueError, match="mode 'slide' needs a crop size and stride"):
        evaluate(Untouchable(), dataset, isanet.get_entry(VOC), mode="slide", progress=False)


# ---------------------------------------------------------------- 3. bounded resources

def test_sizes_are_bounded_before_allocating(tmp_path, capsys):
    code, err = cli(capsys, "sample-data", "voc", "--out", tmp_path, "--size", 100000)
    assert code == 2 and f"argument --size: 100000 is out of range: expected 16 to {MAX_IMAGE_SIDE}" in err
    with pytest.raises(ValueError, match=r"size 100000: out of range"):
        write_sample_dataset("voc", tmp_path, size=100000)
    assert list(tmp_path.iterdir()) == []
    code, err = cli(capsys, "bench", "attention", "--sizes", "100000")
    assert code == 2 and f"argument --sizes: 100000 is out of range: a side is at most {MAX_IMAGE_SIDE}" in err
    code, err = cli(capsys, "eval", VOC, "--checkpoint", "x", "--data-root", "d", "--scale", 100000, 100000)
    assert code == 2 and "argument --scale: 100000 is out of range" in err
    with pytest.raises(ValueError, match=r"test scale \(100000, 100000\): 100000: out of range"):
        Predictor(isanet.ISANet(isanet.ISANetConfig.tiny()), isanet.get_entry(VOC).test.replace(scale=(100000, 100000)))


def test_the_memory_cap_counts_the_input_map_and_never_allocates_past_it():
    # a 1 x 512 x 512 x 512 float map is 512 MiB: over a 0.25 GiB cap it is reported, not allocated
    rows = bench_attention([(512, 512)], channels=512, kernels=["matmul"], memory_cap_bytes=2**28, repeats=1)
    assert [(row.method, row.status) for row in rows] == [("dense", "oom"), ("isa", "oom")]
    assert "input map alone needs 0.50 GiB, over the memory cap of 0.25 GiB" in rows[0].error
    assert rows[0].input_bytes == 512**3 * 4 and rows[0].flops > rows[1].flops > 0  # FLOPs still counted
    # a map that fits: the cap left for the call is what the input and weights leave, so a cap just above the
    # input refuses the call itself
    fits = bench_attention([(8, 8)], channels=16, isa_channels=8, kernels=["matmul"], memory_cap_bytes=4 * 16 * 64
                           + 1, repeats=1, down_factor=(2, 2))
    assert {row.status for row in fits} == {"oom"} and "input map" not in fits[0].error


@pytest.mark.parametrize("command", ["eval", "predict", "export"])
def test_a_small_file_claiming_a_huge_model_is_refused_before_a_model_is_built(tmp_path, capsys, voc_root, command,
                                                                               monkeypatch):
    path = tmp_path / "claims.pth"  # 3 KB: what its meta claims would be 7 GB of weights
    torch.save({"meta": {"model_config": {**isanet.ISANetConfig.tiny().to_dict(), "channels": 30000}},
                "state_dict": {"decode_head.conv_seg.weight": torch.zeros(21, 64, 1, 1)}}, path)
    monkeypatch.setattr("isanet.io.checkpoint.ISANet", lambda config: pytest.fail(f"a model was built: {config}"))
    picture = tmp_path / "a.png"
    cv2.imwrite(str(picture), np.zeros((8, 8, 3), np.uint8))
    argv = {"eval": ["eval", VOC, "--checkpoint", path, "--data-root", voc_root],
            "predict": ["predict", picture, "--model", VOC, "--checkpoint", path, "--out", tmp_path / "out"],
            "export": ["export", "--checkpoint", path, "--out", tmp_path / "model.onnx"]}[command]
    code, err = cli(capsys, *argv)
    assert code == 2 and err.endswith(f"checkpoint {path}: its meta is not a model this kit can build: ISANetConfig: "
                                      "channels must be 1 to 2048 (four times the published 512), got 30000")


# ---------------------------------------------------------------- 3b. memory: estimated before anything is allocated

#: A refusal before any work takes well under a second on a quiet machine; the bound leaves room for a CI machine
#: whose two cores are busy (1.05 s was seen with two training runs beside the tests), while the work refused would
#: take minutes or exhaust memory. The peak of live tensors is the sharp test.
REFUSAL_SECONDS = 5.0


def refused_quickly(call, error: type[BaseException] | None = None) -> tuple[object, float, int]:
    """``call()``'s result (or the ``error`` it raises), its seconds, and the most tensor memory it had alive,
    from a second call under the live-tensor tracker (which is slow to start)."""
    def run():
        if error is None:
            return call()
        with pytest.raises(error) as raised:
            call()
        return raised.value

    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    tracker = LiveTensorTracker()
    with tracker:
        run()
    return result, seconds, tracker.peak_bytes


@pytest.mark.parametrize("argv, refused, reason", [
    (["--down-factor", "8192", "8192", "--sizes", "8", "--methods", "isa"], {"isa"}, "its estimated peak"),
    (["--sizes", "8192"], {"dense", "isa"}, "the input map alone needs 128.00 GiB"),
    (["--memory-cap-gb", "1", "--sizes", "4096"], {"dense", "isa"}, "the input map alone needs 32.00 GiB"),
    (["--memory-cap-gb", "0.05", "--sizes", "64", "--channels", "64", "--isa-channels", "32", "--kernels", "matmul"],
     {"dense"}, "its estimated peak, 0.14 GiB"),  # under a small cap: dense's 4096 x 4096 weights, twice
])
def test_bench_attention_refuses_a_row_by_its_estimate_before_allocating(tmp_path, capsys, argv, refused, reason):
    rows_file = tmp_path / "rows.json"
    code, seconds, peak = refused_quickly(lambda: main(["bench", "attention", *argv, "--repeats", "1", "--warmup", "0",
                                                        "--json", str(rows_file)]))
    rows = json.loads(rows_file.read_text())
    assert code == 0 and {row["method"] for row in rows if row["status"] == "oom"} == refused
    assert all(reason in row["error"] for row in rows if row["status"] == "oom")
    assert seconds < REFUSAL_SECONDS and peak < 2**24  # nothing near what the refused rows would need


def test_bench_model_counts_the_windows_before_building(capsys):
    code, seconds, peak = refused_quickly(lambda: main(
        ["bench", "model", VOC, "--mode", "slide", "--crop", "1", "1", "--stride", "1", "1", "--size", "2048",
         "2048"]))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith("--size 2048 2048: a slide 2048x2048 prediction (4194304 windows of 1x1) takes "
                                      "4,194,304 model calls, more than the 4,096 a picture may take "
                                      "(isanet.models.footprint.MAX_CALLS): a larger crop or stride")
    assert seconds < REFUSAL_SECONDS and peak < 2**20


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_predict_and_eval_refuse_a_test_scale_over_the_cap_before_any_picture(tmp_path, capsys, voc_root, command):
    teaching = teaching_checkpoint()  # 1.7 MB, but a 4096 x 4096 picture's affinities need 10.5 GiB
    picture = tmp_path / "a.png"
    cv2.imwrite(str(picture), np.zeros((8, 8, 3), np.uint8))
    argv = {"predict": ["predict", picture, "--model", VOC, "--out", tmp_path / "out"],
            "eval": ["eval", VOC, "--data-root", voc_root]}[command]
    code, seconds, peak = refused_quickly(lambda: main([str(arg) for arg in argv] + [
        "--checkpoint", str(teaching), "--scale", "4096", "4096"]))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith("test scale 4096x4096: a single-scale prediction of a 4096x4096 picture needs "
                                      "about 10.5 GiB at its peak (estimated before allocating), more than the "
                                      "memory cap of 8 GiB (--memory-cap-gb 8): a smaller input, or a larger cap")
    assert seconds < REFUSAL_SECONDS and peak < 2**23 and not (tmp_path / "out").exists()
    code, err = cli(capsys, *argv, "--checkpoint", teaching, "--scale", 512, 512, "--memory-cap-gb", "0.01")
    assert code == 2 and "test scale 512x512" in err and "(--memory-cap-gb 0.01)" in err  # a small cap, a small scale


def test_predict_refuses_one_picture_by_its_own_estimate_and_goes_on(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "big.png"), np.zeros((1200, 1200, 3), np.uint8))  # ms-flip views up to 2100 x 2100
    cv2.imwrite(str(folder / "small.png"), np.zeros((64, 64, 3), np.uint8))
    code = main(["predict", str(folder), "--model", VOC, "--checkpoint", str(teaching_checkpoint()), "--out",
                 str(tmp_path / "out"), "--ms-flip", "--memory-cap-gb", "0.25", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and f"error: {folder / 'big.png'}: a multi-scale + flip prediction of a 1200x1200 picture " \
                         "needs about" in err
    assert sorted((tmp_path / "out").glob("*.png")) == [tmp_path / "out" / name for name in ("small_label.png",
                                                                                              "small_overlay.png")]


def test_the_python_api_refuses_by_the_estimate(tmp_path):
    model = load_model(teaching_checkpoint()).eval()
    x = torch.zeros(1, 3, 512, 512)
    for call in (lambda: predict(model, x, memory_cap_bytes=2**22),
                 lambda: Predictor(model, isanet.get_entry(VOC).test.replace(scale=(512, 512)),
                                   memory_cap=MemoryCap(2**22)).scores(np.zeros((512, 512, 3), np.uint8)),
                 lambda: capture(model, x, memory_cap_bytes=2**22),
                 lambda: check_memory(model, ((512, 512),), 2**22)):
        error, seconds, peak = refused_quickly(call, MemoryCapError)
        assert re.search(r"needs about \d+(\.\d)? MiB at its peak \(estimated before allocating\), more than the "
                         r"memory cap of 4 MiB \(memory_cap_bytes\)", str(error)), error
        assert seconds < REFUSAL_SECONDS and peak < 2**20
    assert predict(model, x[:, :, :64, :64], memory_cap_bytes=2**22).shape == (1, 5, 64, 64)  # a small one runs


# ---------------------------------------------------------------- 4. every argument checked, every message useful

@pytest.mark.parametrize("argv, message", [
    (["zoo", "--dataset", "foo"], "argument --dataset: invalid choice: 'foo' (choose from 'cityscapes', 'ade20k', "
                                  "'voc')"),
    (["bench", "attention", "--memory-cap-gb", "-1"], "argument --memory-cap-gb: -1 is out of range"),
    (["bench", "attention", "--repeats", "0"], "argument --repeats: 0 is out of range: expected 1 to"),
    (["bench", "attention", "--warmup", "-1"], "argument --warmup: -1 is out of range: expected 0 to"),
    (["bench", "attention", "--channels", "0"], "argument --channels: 0 is out of range: expected 1 to"),
    (["bench", "attention", "--sizes", "0x8"], "argument --sizes: a size is N or HxW with positive numbers"),
    (["eval", VOC, "--checkpoint", "x", "--data-root", "d", "--scale", "0", "0"], "argument --scale: 0 is out of"),
    (["train", VOC, "--data-root", "d", "--work-dir", "w", "--iters", "0"], "argument --iters: 0 is out of range"),
    (["train", VOC, "--data-root", "d", "--work-dir", "w", "--keep", "0"], "argument --keep: 0 is out of range"),
    (["train", VOC, "--data-root", "d", "--work-dir", "w", "--crop", "4", "4"], "argument --crop: 4 is out of"),
    (["train", VOC, "--data-root", "d", "--work-dir", "w", "--scale", "0", "64"], "argument --scale: 0 is out of"),
    (["sample-data", "voc", "--out", "o", "--num-val", "0"], "argument --num-val: 0 is out of range"),
    (["predict", "in.png", "--model", VOC, "--checkpoint", "c", "--out", "o", "--scale", "100000", "9"],
     "argument --scale: 100000 is out of range"),
    (["attention", "in.png", "--model", VOC, "--out", "o.html", "--width", "100000"],
     "argument --width: 100000 is out of range: expected 8 to 1024"),
    (["attention", "in.png", "--model", VOC, "--out", "o.html", "--pixel", "-1", "3"], "argument --pixel: -1 is out"),
    (["export", "--checkpoint", "c", "--out", "m.onnx", "--rtol", "nan"], "argument --rtol: nan is out of range: "
                                                                           "expected a finite number at least 0"),
    (["export", "--checkpoint", "c", "--out", "m.onnx", "--rtol=-1e-4"], "argument --rtol: -1e-4 is out of range"),
    (["predict", "in.png", "--model", VOC, "--checkpoint", "c", "--out", "o", "--opacity", "inf"],
     "argument --opacity: inf is out of range: expected a finite number at least 0 and at most 1"),
    (["sample-data", "voc", "--out", "o", "--object-classes", "0"], "argument --object-classes: 0 is out of range"),
])
def test_bad_arguments_get_one_line_naming_them(capsys, argv, message):
    code, err = cli(capsys, *argv)
    assert code == 2 and message in err


def number_options() -> list[tuple[str, argparse.Action]]:
    """Every option (or positional) of every command whose value is a number: its type takes "1" but not "abc"."""
    from isanet.cli import build_parser, leaf_commands
    from isanet.notebook.site import build_parser as site_parser

    parsers = {" ".join(words): parser for words, parser in leaf_commands(build_parser()).items()}
    parsers["kit.py site"] = site_parser()
    return [(f"{name} {(action.option_strings or [action.dest])[0]}", action) for name, parser in parsers.items()
            for action in parser._actions if action.type is not None and refuses(action.type, "abc")]


def refuses(parse, text: str) -> bool:
    try:
        parse(text)
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return True
    return False


def test_every_number_option_is_checked_finite_and_in_range():
    options = number_options()
    names = [name for name, _ in options]
    assert {"export --rtol", "predict --opacity", "kit.py site --timeout", "train --lr"} <= set(names)
    for name, action in options:
        assert action.type not in (int, float), f"{name}: a bare {action.type.__name__} takes nan, inf and negatives"
        assert all(refuses(action.type, text) for text in ("nan", "inf", "-inf", "1e309", "-1")), name  # none is
        # negative


@pytest.mark.parametrize("argv, message", [
    (["bench", "attention", "--orders", "group"], "--orders group: token orders apply to --kernels flex only"),
    (["bench", "attention", "--kernels", "flex", "--backward", "--orders", "group"],
     "flex has no backward on a CPU, so with --backward its rows run as masked matmul"),
    (["bench", "model", VOC, "--mode", "whole", "--crop", "64", "64"], "--crop sets the sliding window, and the run "
                                                                      "predicts whole pictures (--mode whole)"),
    (["attention", "in.png", "--teaching", "--seed", "3", "--out", "o.html"],
     "--seed 3 seeds random weights, and --teaching gives trained ones: drop --seed"),
    (["attention", "in.png", "--model", VOC, "--checkpoint", "c.pth", "--seed", "3", "--out", "o.html"],
     "--seed 3 seeds random weights, and --checkpoint gives trained ones"),
    (["train", VOC, "--data-root", "d", "--work-dir", "w", "--recipe", "teaching", "--tiny"],
     "--tiny and --recipe teaching each choose the architecture"),
    (["train", VOC, "--data-root", "d", "--work-dir", "w", "--crop", "8", "8", "--batch-size", "1"],
     "--crop (8, 8) with --batch-size 1: one crop this small is one pixel at 1/8 resolution, and BatchNorm cannot"),
])
def test_mixed_or_ignored_options_are_refused_naming_both(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, err = cli(capsys, *argv)
    assert code == 2 and message in err
    assert not (tmp_path / "w").exists() and not (tmp_path / "o.html").exists()


def test_one_picture_a_batch_in_training_mode_says_what_to_do():
    model = isanet.ISANet(isanet.ISANetConfig.tiny()).train()
    with pytest.raises(ValueError, match=r"a batch of one 8x5 picture in training mode is one pixel at 1/8 resolution"
                                         r".*2 or more pictures a batch .*model\.eval\(\) to predict"):
        model(torch.zeros(1, 3, 8, 5))
    assert model(torch.zeros(2, 3, 8, 5))[0].shape == (2, 5, 8, 5)  # two pictures, or one larger, train
    assert model(torch.zeros(1, 3, 9, 8))[0].shape == (1, 5, 9, 8)


def test_zoo_dataset_is_case_insensitive(capsys):
    assert main(["zoo", "--dataset", "VOC"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]]
    assert len(names) == 4 and all("_voc12aug-" in name for name in names)


@pytest.mark.parametrize("option", ["--out", "--confusion", "--json", "--work-dir", "predict --out",
                                    "attention --out"])
def test_unwritable_outputs_are_refused_first_naming_path_and_reason(tmp_path, capsys, voc_root, option):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    target = blocker / "sub" / "result.json"
    evaluation = ["eval", VOC, "--checkpoint", tmp_path / "missing.pth", "--data-root", voc_root]
    argv = {"--out": evaluation, "--confusion": evaluation,
            "predict --out": ["predict", voc_root, "--model", VOC, "--checkpoint", tmp_path / "missing.pth"],
            "attention --out": ["attention", tmp_path / "missing.png", "--model", VOC],
            "--json": ["bench", "attention", "--sizes", "8", "--channels", "8", "--isa-channels", "4"],
            "--work-dir": ["train", VOC, "--data-root", voc_root, "--device", "cpu"]}[option]
    flag = option.split()[-1]
    code, err = cli(capsys, *argv, flag, target)
    assert code == 2
    assert f"{flag} {target}: cannot be created, {blocker} is a file, not a folder" in err  # not "error: 2"


def test_os_errors_read_as_path_and_reason():
    assert error_message(FileNotFoundError(2, "No such file or directory", "/x/y.json")) == \
        "/x/y.json: no such file or directory"
    assert error_message(ValueError("--lr inf: out of range\n(detail)")) == "--lr inf: out of range"


def test_an_allocation_that_fails_is_said_as_what_it_means():
    """torch's allocator says "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate
    memory: you tried to allocate 1125899906842624 bytes...", numpy "Unable to allocate 1.00 PiB for an array with
    shape ...": what reaches the user is what it means, and what to do."""
    with pytest.raises(RuntimeError) as torch_error:
        torch.empty(2**50, dtype=torch.uint8)  # 1 PiB: more than any address space
    with pytest.raises(MemoryError) as numpy_error:
        np.empty(2**50, np.uint8)
    assert error_message(torch_error.value) == ("not enough memory: an allocation of 1.0 PiB failed; a smaller size or "
                                                "scale, or fewer windows or images at once")
    assert error_message(numpy_error.value).startswith("not enough memory: an allocation of 1.00 PiB failed; ")
    cuda = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.19 GiB total capacity)")
    assert error_message(cuda).startswith("not enough GPU memory: an allocation of 2.00 GiB failed; ")


def test_a_corrupt_image_in_a_data_worker_is_one_line(tmp_path):
    top = write_sample_dataset("voc", tmp_path / "data", num_train=2, num_val=1, size=64)
    for image in (top / "JPEGImages").iterdir():
        image.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError) as caught:
        train(tiny_run(top.parent, tmp_path / "run", num_workers=1, iters=1))
    message = str(caught.value)
    assert message.startswith("cannot read image ") and "JPEGImages" in message and "\n" not in message


@pytest.mark.parametrize("convert", [torch.Tensor.double, torch.Tensor.half, lambda x: x.numpy()])
def test_predict_takes_any_float_batch(convert):
    torch.manual_seed(0)
    model = isanet.ISANet(isanet.ISANetConfig.tiny()).eval()
    x = torch.randn(2, 3, 32, 32)
    expected, got = predict(model, x), predict(model, convert(x))
    assert got.dtype == torch.float32 and got.shape == (2, 5, 32, 32)
    assert torch.allclose(got, expected, atol=5e-2 if convert is torch.Tensor.half else 1e-6)


@pytest.mark.parametrize("x, message", [
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "normalised float pixels, got dtype torch.uint8: .*image_logits"),
    ([torch.zeros(3, 8, 8)], "got a list: stack the images"),
    (torch.zeros(0, 3, 8, 8), r"empty batch \(shape \(0, 3, 8, 8\)\)"),
    (torch.zeros(3, 8, 8), r"add a batch dimension: x\[None\]"),
    (torch.zeros(1, 1, 8, 8), "3 colour channels"),
])
def test_predict_refuses_what_it_cannot_mean(x, message):
    with pytest.raises(ValueError, match=message):
        predict(isanet.ISANet(isanet.ISANetConfig.tiny()), x)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_a_float_picture_in_0_1_is_the_same_picture(height, width, seed):
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert np.array_equal(as_rgb_uint8(image / 255.0), image)
    assert np.array_equal(as_rgb_uint8(image.astype(np.float32)), image) or image.max() <= 1


def test_pictures_that_are_not_pictures_are_refused(tmp_path):
    for bad, message in ((np.full((4, 4, 3), -0.5), r"\[0, 1\] \(float\) or \[0, 255\], got -0.5"),
                         (np.full((4, 4, 3), np.nan), "got nan"), (np.zeros((4, 4)), "H x W x 3 RGB")):
        with pytest.raises(ValueError, match=message):
            as_rgb_uint8(bad)
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match=f"cannot read image {tmp_path / 'notes.png'}: not an image file"):
        as_rgb_uint8(tmp_path / "notes.png")


def test_the_explorer_takes_float_pictures_and_refuses_pixels_outside(tmp_path):
    from isanet.notebook.attention_explorer import AttentionExplorer
    from isanet.notebook.model_menu import ModelChoice

    torch.manual_seed(0)
    model = isanet.ISANet(isanet.ISANetConfig.tiny(channels=32, isa_channels=16, aux_channels=16)).eval()
    image = np.random.default_rng(0).integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
    explorer = AttentionExplorer(image / 255.0, [ModelChoice("tiny", lambda: model)])
    assert np.array_equal(explorer.image, image)  # not turned black
    with pytest.raises(ValueError, match=r"select\(1000000.0, 1000000.0\): outside the image \(32 x 48\)"):
        explorer.select(1e6, 1e6)
    with pytest.raises(ValueError, match="outside the feature"):
        explorer.select(-1, 0, coords="feature")
    assert explorer.select(31, 47) == (31, 47)


# ---------------------------------------------------------------- 5. resume does what it says

def test_resume_with_fewer_iterations_than_done_is_refused(tmp_path, voc_root):
    train(tiny_run(voc_root, tmp_path / "run", iters=4))
    with pytest.raises(TrainError, match=r"TrainConfig\.iters 2: the run in .* is already at iteration 4"):
        train(tiny_run(voc_root, tmp_path / "run", iters=2, resume=True))


def test_stopping_before_the_first_checkpoint_can_be_started_again(tmp_path, voc_root):
    train(tiny_run(voc_root, tmp_path / "run", stop_after=1))  # as a Ctrl-C after iteration 1: log, no checkpoint
    assert (tmp_path / "run" / "log.jsonl").is_file() and not list((tmp_path / "run").glob("*.pth"))
    with pytest.raises(TrainError, match="start a fresh run without TrainConfig.resume"):
        train(tiny_run(voc_root, tmp_path / "run", resume=True))
    summary = train(tiny_run(voc_root, tmp_path / "run", iters=2))  # the advice works: no loop
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert summary["iter"] == 2 and [record["iter"] for record in records] == [1, 2]


def test_keep_and_precision_are_restored_on_resume(tmp_path, voc_root):
    train(tiny_run(voc_root, tmp_path / "run", iters=6, save_every=1, keep_checkpoints=2, stop_after=3))
    train(tiny_run(voc_root, tmp_path / "run", iters=6, save_every=1, resume=True))  # --keep left out
    assert sorted(path.name for path in (tmp_path / "run").glob("iter_*.pth")) == ["iter_5.pth", "iter_6.pth"]
    entry = isanet.get_entry(VOC)
    previous = {"name": VOC, "precision": "bf16", "keep_checkpoints": 3}
    restored = resolve_config(TrainConfig(data_root="d", work_dir="w"), entry, previous)
    assert (restored.precision, restored.keep_checkpoints) == ("bf16", 3)
    changed = resolve_config(TrainConfig(data_root="d", work_dir="w", precision="fp32", keep_checkpoints=5), entry,
                             previous)
    assert (changed.precision, changed.keep_checkpoints) == ("fp32", 5)
    fresh = resolve_config(TrainConfig(data_root="d", work_dir="w"), entry)
    assert (fresh.precision, fresh.keep_checkpoints) == ("fp32", None)


def test_checkpoints_with_the_old_amp_switches_resume_in_their_precision(tmp_path, voc_root):
    entry = isanet.get_entry(VOC)
    old = {"name": VOC, "amp": True, "amp_dtype": "float16", "precision": "fp32"}  # written before precision alone
    assert resolve_config(TrainConfig(data_root="d", work_dir="w"), entry, old, "cuda").precision == "fp16"
    assert resolve_config(TrainConfig(data_root="d", work_dir="w"), entry, {**old, "amp_dtype": "bfloat16"},
                          "cuda").precision == "bf16"
    assert resolve_config(TrainConfig(data_root="d", work_dir="w"), entry, old, "cpu").precision == "fp32"
    assert resolve_config(TrainConfig(data_root="d", work_dir="w"), entry, {**old, "precision": "bf16"},
                          "cuda").precision == "bf16"  # amp applied only when precision was fp32
    with pytest.raises(TrainError, match="TrainConfig.resume: the checkpoint's amp_dtype 'half' is none of auto"):
        resolve_config(TrainConfig(data_root="d", work_dir="w"), entry, {**old, "amp_dtype": "half"}, "cuda")
    train(tiny_run(voc_root, tmp_path / "run", stop_after=2))
    content = torch.load(tmp_path / "run" / "iter_2.pth", weights_only=True)
    saved = content["meta"]["config"]
    del saved["precision"]
    saved.update(amp=True, amp_dtype="auto")  # what a CPU run with --amp wrote: it trained in fp32
    torch.save(content, tmp_path / "run" / "iter_2.pth")
    summary = train(tiny_run(voc_root, tmp_path / "run", resume=True))
    assert summary["iter"] == 4 and summary["precision"] == "fp32" and summary["config"]["precision"] == "fp32"
    assert "amp" not in torch.load(tmp_path / "run" / "iter_4.pth", weights_only=True)["meta"]["config"]


# ---------------------------------------------------------------- 6. the user's umask

def test_files_are_written_with_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        checkpoint = tiny_checkpoint(tmp_path / "model.pth")
        result = write_json_atomic({"mIoU": 1.0}, tmp_path / "result.json")
    finally:
        os.umask(old)
    assert (checkpoint.stat().st_mode & 0o777, result.stat().st_mode & 0o777) == (0o644, 0o644)


# ---------------------------------------------------------------- the checks themselves

@settings(max_examples=80, deadline=None)
@given(st.integers(-10**9, 10**9), st.integers(-100, 100), st.integers(0, 200))
def test_bounded_int_accepts_exactly_its_range(value, low, width):
    import argparse

    parse = bounded_int(low, low + width)
    if low <= value <= low + width:
        assert parse(str(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="out of range"):
            parse(str(value))


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "0", "abc"])
def test_bounded_float_refuses_non_finite_and_the_open_end(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        bounded_float(0, 10, low_open=True)(text)
