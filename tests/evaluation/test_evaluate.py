"""Prediction from original images (whole, slide, ms+flip) with known answers, ``evaluate``, and ``isanet eval``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import isanet
from isanet.cli import main
from isanet.data.registry import build_dataset, write_sample_dataset
from isanet.data.transforms import IMAGENET_MEAN as MEAN
from isanet.data.transforms import IMAGENET_STD as STD
from isanet.data.transforms import scale_factor_size
from isanet.evaluation.evaluate import evaluate
from isanet.evaluation.inference import TTA_RATIOS, image_logits, ms_flip_probabilities
from isanet.io.outputs import LEDGER
from isanet.models.zoo import TestSettings

NAMES = {"voc": "isanet_r50-d8_4xb4-20k_voc12aug-512x512", "cityscapes": "isanet_r50-d8_4xb2-40k_cityscapes-769x769",
         "ade20k": "isanet_r50-d8_4xb4-80k_ade20k-512x512"}


class LinearModel(nn.Module):
    """Per-pixel logits ``W x + b`` (a 1 x 1 convolution with fixed weights)."""

    def __init__(self, num_classes: int = 3, align_corners: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator))
            self.conv.bias.copy_(torch.randn(num_classes, generator=generator))
        self.num_classes, self.align_corners = num_classes, align_corners

    def forward(self, x):
        return self.conv(x)


class CropMeanModel(LinearModel):
    """Two channels: the mean of the input's first channel over the whole crop, and 0."""

    def forward(self, x):
        mean = x[:, :1].mean(dim=(2, 3), keepdim=True).expand(-1, -1, *x.shape[2:])
        return torch.cat([mean, torch.zeros_like(mean)], dim=1)


class RampModel(LinearModel):
    """Two channels: ``6 * column / (width - 1)`` of whatever it is shown, and 0; it also records its inputs."""

    def __init__(self):
        super().__init__(num_classes=2, align_corners=True)
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.clone())
        ramp = torch.linspace(0, 6, x.shape[3]).expand(x.shape[0], 1, x.shape[2], -1)
        return torch.cat([ramp, torch.zeros_like(ramp)], dim=1)


class ConstantModel(LinearModel):
    """Predicts class ``label`` everywhere."""

    def __init__(self, num_classes: int, label: int):
        super().__init__(num_classes)
        self.label = label

    def forward(self, x):
        logits = torch.zeros(x.shape[0], self.num_classes, *x.shape[2:])
        logits[:, self.label] = 1.0
        return logits


def test_whole_prediction_of_a_constant_image_is_the_linear_map():
    model = LinearModel()
    image = np.empty((30, 40, 3), np.uint8)
    image[:] = (200, 10, 90)
    logits = image_logits(model, image, (64, 16), MEAN, STD)
    pixel = (torch.tensor([200.0, 10, 90]) - torch.tensor(MEAN)) / torch.tensor(STD)
    expected = model.conv.weight[:, :, 0, 0] @ pixel + model.conv.bias
    assert logits.shape == (3, 30, 40)
    torch.testing.assert_close(logits, expected.detach()[:, None, None].expand(3, 30, 40))


def test_whole_prediction_comes_back_at_the_original_size():
    model = LinearModel()
    columns = np.linspace(0, 255, 40)
    image = np.stack([np.tile(columns, (30, 1))] * 3, axis=-1).round().astype(np.uint8)
    logits = image_logits(model, image, (80, 60), MEAN, STD)  # up to 60 x 80, then back down to 30 x 40
    direct = model(((torch.from_numpy(image).float() - torch.tensor(MEAN)) / torch.tensor(STD)).permute(2, 0, 1)[None])
    assert logits.shape == (3, 30, 40)
    torch.testing.assert_close(logits[:, :, 2:-2], direct[0, :, :, 2:-2].detach(), atol=0.05, rtol=0)


def test_slide_prediction_averages_window_means_by_hand():
    image = np.zeros((4, 10, 3), np.uint8)
    image[..., 0] = np.arange(10)
    # test scale (10, 4) keeps 4 x 10; mean 0 / std 1 keeps the column index as the value
    logits = image_logits(CropMeanModel(), image, (10, 4), (0, 0, 0), (1, 1, 1), mode="slide", crop_size=(4, 4),
                          stride=(3, 3))
    # windows x = [0, 4), [3, 7), [6, 10) have means 1.5, 4.5, 7.5; columns 3 and 6 are in two windows each
    assert logits[0].tolist() == [[1.5, 1.5, 1.5, 3.0, 4.5, 4.5, 6.0, 7.5, 7.5, 7.5]] * 4
    assert (logits[1] == 0).all()


def test_ms_flip_averages_probabilities_of_unflipped_views():
    model = RampModel()
    image = np.full((50, 63, 3), 128, np.uint8)
    probabilities = ms_flip_probabilities(model, image, MEAN, STD)
    # every unflipped view gives t = 6 x / 62 back at the original size, every flipped one 6 - t (align_corners=True
    # resizes a ramp exactly); mmseg averages softmax probabilities: (sigmoid(t) + sigmoid(6 - t)) / 2
    t = torch.linspace(0, 6, 63)
    expected = (torch.sigmoid(t) + torch.sigmoid(6 - t)) / 2
    assert probabilities.shape == (2, 50, 63)
    torch.testing.assert_close(probabilities[0], expected.expand(50, 63), atol=1e-5, rtol=0)
    torch.testing.assert_close(probabilities.sum(0), torch.ones(50, 63))
    averaged_logits = torch.sigmoid(torch.tensor(3.0))  # what averaging logits would give, everywhere
    assert float(probabilities[0, 0, 0]) == pytest.approx(0.749, abs=1e-3) and float(averaged_logits) > 0.95


def test_ms_flip_views_follow_mmcv_scale_factors_and_mirror():
    model = RampModel()
    image = np.random.default_rng(0).integers(0, 256, (50, 63, 3), dtype=np.uint8)
    ms_flip_probabilities(model, image, MEAN, STD)
    sizes = [tuple(x.shape[2:]) for x in model.inputs]
    assert sizes == [scale_factor_size(50, 63, ratio) for ratio in TTA_RATIOS for _ in range(2)]
    assert sizes[2] == (37, 47)  # 0.75: mmcv's two-step rounding, not round(50 * 0.75) = 38
    assert all(torch.equal(plain, flipped.flip(dims=(3,))) for plain, flipped in zip(model.inputs[::2],
                                                                                       model.inputs[1::2]))


def test_settings_from_zoo_entries():
    settings = isanet.get_entry(NAMES["cityscapes"]).test
    assert settings == TestSettings(mode="slide", scale=(2049, 1025), mean=MEAN, std=STD, align_corners=True,
                                    crop_size=(769, 769), stride=(513, 513), ratios=TTA_RATIOS)
    ade = isanet.get_entry(NAMES["ade20k"]).test.replace(scale=(128, 64))
    assert ade.mode == "whole" and ade.scale == (128, 64) and ade.crop_size is None and not ade.align_corners


@pytest.fixture(scope="module")
def voc_val(tmp_path_factory):
    return build_dataset("voc", write_sample_dataset("voc", tmp_path_factory.mktemp("voc"), num_train=1, num_val=4,
                                                     size=48), "val")


def test_evaluate_a_constant_prediction_by_hand(voc_val):
    labels = np.concatenate([sample["label"].ravel() for sample in voc_val])
    valid = labels[labels != 255]
    counts = np.bincount(valid, minlength=21)
    settings = TestSettings(mode="whole", scale=(48, 32), mean=MEAN, std=STD, align_corners=False)
    results = evaluate(ConstantModel(21, 0), voc_val, settings, progress=False)
    # everything predicted as background: IoU_0 = Acc_0 = aAcc = share of background; other seen classes 0
    background = round(100 * counts[0] / valid.size, 2)
    assert results["aAcc"] == background and results["IoU"]["background"] == background
    assert results["Acc"]["background"] == 100.0
    present = np.flatnonzero(counts)
    assert results["mIoU"] == round(background / len(present), 2)
    assert all(results["IoU"][voc_val.CLASSES[i]] == 0.0 for i in present if i)
    assert all(math.isnan(results["IoU"][name]) for i, name in enumerate(voc_val.CLASSES) if counts[i] == 0)
    assert results["num_images"] == 4 and results["settings"]["scale"] == (48, 32)
    # the confusion matrix (rows: label, columns: prediction): every labelled pixel in the background column
    assert np.array(results["confusion"]).tolist() == np.stack([counts] + [np.zeros(21, int)] * 20, axis=1).tolist()


def test_evaluate_options_and_class_check(voc_val):
    entry = isanet.get_entry(NAMES["voc"])
    settings = entry.test.replace(scale=(48, 32), crop_size=(20, 20), stride=(15, 15))
    results = evaluate(LinearModel(21), voc_val, settings, mode="slide", ms_flip=True, limit=2, progress=False)
    used = results["settings"]
    assert results["num_images"] == 2
    assert (used["mode"], used["ms_flip"], used["limit"], used["device"], used["crop_size"]) == (
        "slide", True, 2, "cpu", (20, 20))
    with pytest.raises(ValueError, match="needs a crop size and stride"):
        evaluate(LinearModel(21), voc_val, entry, mode="slide", limit=1, progress=False)
    with pytest.raises(ValueError, match="predicts 3 classes but VOCDataset has 21"):
        evaluate(LinearModel(3), voc_val, settings, progress=False)


# ---- the command line, end to end on each sample data set with a random-weights R-50 checkpoint ----

@pytest.fixture(scope="module")
def sample_setup(tmp_path_factory):
    """Per data set: (data root, checkpoint), written with the two sample commands."""
    root = tmp_path_factory.mktemp("cli")

    def make(kind: str):
        assert main(["sample-data", kind, "--out", str(root / kind), "--num-train", "1", "--num-val", "2",
                     "--size", "48"]) == 0
        assert main(["sample-checkpoint", NAMES[kind], "--out", str(root / f"{kind}.pth")]) == 0
        return root / kind, root / f"{kind}.pth"
    return make


@pytest.mark.parametrize("kind, extra", [("voc", []), ("cityscapes", ["--ms-flip"]), ("ade20k", [])])
def test_isanet_eval_end_to_end(sample_setup, tmp_path, capsys, kind, extra):
    data_root, checkpoint = sample_setup(kind)
    out = tmp_path / "results" / "eval.json"
    code = main(["eval", NAMES[kind], "--checkpoint", str(checkpoint), "--data-root", str(data_root),
                 "--scale", "64", "32", "--limit", "1", "--out", str(out), *extra])
    printed = capsys.readouterr().out
    assert code == 0
    record = json.loads(out.read_text())
    entry = isanet.get_entry(NAMES[kind]).to_dict()
    assert record["model"] == NAMES[kind] and record["num_images"] == 1 and record["split"] == "val"
    assert list(record["IoU"]) == list(build_dataset(kind, data_root).CLASSES)
    assert all(v is None or 0 <= v <= 100 for v in record["IoU"].values()) and 0 <= record["mIoU"] <= 100
    assert record["settings"]["scale"] == [64, 32] and record["settings"]["ms_flip"] == bool(extra)
    assert record["settings"]["mode"] == entry["test_cfg"]["mode"]
    assert record["published"] == {"mIoU": entry["mIoU"], "mIoU_ms_flip": entry["mIoU_ms_flip"]}
    assert "synthetic sample data" in printed and f"mIoU {record['mIoU']:.2f}" in printed
    assert f"{entry['mIoU']:.2f} single-scale" in printed and "| Class" in printed
    assert [p.name for p in out.parent.iterdir() if p.name != LEDGER] == ["eval.json"]  # no temporary


def test_isanet_eval_reports_bad_input(sample_setup, tmp_path, capsys):
    data_root, checkpoint = sample_setup("voc")
    args = ["eval", NAMES["voc"], "--checkpoint", str(checkpoint)]
    assert main([*args, "--data-root", str(tmp_path / "missing")]) == 2
    assert f"error: {tmp_path / 'missing'} is not a Pascal VOC data root" in capsys.readouterr().err
    assert main([*args, "--data-root", str(data_root), "--split", "nope"]) == 2
    assert "no split 'nope'" in capsys.readouterr().err
    wrong = ["eval", NAMES["cityscapes"], "--checkpoint", str(checkpoint), "--data-root", str(data_root)]
    assert main(wrong) == 2
    assert "not a Cityscapes data root" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*args, "--data-root", str(data_root), "--device", "cuda"]) == 2
        assert "--device cuda: no CUDA device is available" in capsys.readouterr().err
    assert main(["sample-checkpoint", "isanet_r50_nope", "--out", str(tmp_path / "x.pth")]) == 2
    assert "unknown ISANet zoo model" in capsys.readouterr().err


def test_sample_checkpoint_is_a_published_layout_that_says_it_is_random(sample_setup):
    from isanet.data.datasets import VOCDataset
    from isanet.io.checkpoint import read_checkpoint

    saved = read_checkpoint(sample_setup("voc")[1])
    assert saved["meta"]["note"].startswith("RANDOM WEIGHTS written by `isanet sample-checkpoint`")
    assert saved["meta"]["dataset_meta"]["classes"] == list(VOCDataset.CLASSES)
    model = isanet.build_model(NAMES["voc"])
    assert list(saved["state_dict"]) == list(model.state_dict())
    assert saved["state_dict"]["decode_head.conv_seg.weight"].shape == (21, 512, 1, 1)


def test_isanet_eval_precision_and_optimize(sample_setup, tmp_path, monkeypatch):
    """bf16 (as on a CPU with AVX-512 BF16) and the optimized copy score the same picture; both are recorded."""
    from isanet import runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr("isanet.models.optimize.BACKEND", "eager")  # the wiring; Inductor: tests/models
    data_root, checkpoint = sample_setup("voc")
    records = {}
    for name, extra in (("fp32", []), ("bf16", ["--precision", "bf16"]), ("optimized", ["--optimize"])):
        out = tmp_path / f"{name}.json"
        assert main(["eval", NAMES["voc"], "--checkpoint", str(checkpoint), "--data-root", str(data_root),
                     "--scale", "64", "32", "--limit", "2", "--out", str(out), *extra]) == 0
        records[name] = json.loads(out.read_text())
    assert [records[name]["settings"]["precision"] for name in records] == ["fp32", "bf16", "fp32"]
    assert [records[name]["settings"]["optimize"] for name in records] == [False, False, True]
    assert records["optimized"]["mIoU"] == pytest.approx(records["fp32"]["mIoU"], abs=0.01)
    assert abs(records["bf16"]["mIoU"] - records["fp32"]["mIoU"]) < 5  # random weights: near-ties flip


def test_isanet_eval_fp16_on_cpu_warns_and_runs_fp32(sample_setup, tmp_path):
    data_root, checkpoint = sample_setup("voc")
    out = tmp_path / "fp16.json"
    with pytest.warns(UserWarning, match="--precision fp16 on cpu: fp16 autocast is for CUDA"):
        assert main(["eval", NAMES["voc"], "--checkpoint", str(checkpoint), "--data-root", str(data_root),
                     "--scale", "64", "32", "--limit", "1", "--out", str(out), "--precision", "fp16"]) == 0
    assert json.loads(out.read_text())["settings"]["precision"] == "fp32"


def test_isanet_eval_identity_step_on_the_teaching_model(tmp_path, capsys):
    """The shipped teaching model (its meta records the teaching recipe) is evaluated at the recipe's 160 px; with
    its long-range step replaced by identity it loses the beacon's colour, and the record says which step."""
    from isanet.notebook.teaching import SHIPPED_CHECKPOINT

    data = tmp_path / "context"
    assert main(["sample-data", "context", "--out", str(data), "--num-train", "1", "--num-val", "4"]) == 0
    base = ["eval", NAMES["voc"], "--checkpoint", str(SHIPPED_CHECKPOINT), "--data-root", str(data)]
    records = {}
    for step in (None, "long-range", "short-range"):
        out = tmp_path / f"{step}.json"
        assert main([*base, "--out", str(out), *(["--identity-step", step] if step else [])]) == 0
        records[step] = json.loads(out.read_text())
        printed = capsys.readouterr().out
        said = f"note: --identity-step {step}: that step's attention was replaced by identity" in printed
        assert said == bool(step)
    assert [records[step]["identity_step"] for step in records] == [None, "long-range", "short-range"]
    assert all(record["settings"]["scale"] == [160, 160] for record in records.values())  # the recipe's val_scale
    assert records["long-range"]["mIoU"] < records[None]["mIoU"] - 20  # the beacon reaches the objects no more
    scaled = tmp_path / "scaled.json"
    assert main([*base, "--out", str(scaled), "--scale", "128", "128"]) == 0  # --scale still overrides the recipe
    assert json.loads(scaled.read_text())["settings"]["scale"] == [128, 128]


def test_isanet_eval_identity_step_refuses_other_heads(tmp_path, capsys):
    model = isanet.ISANet(isanet.ISANetConfig.tiny(head="dense", num_classes=5))
    checkpoint = isanet.save_checkpoint(model, tmp_path / "dense.pth")
    data = tmp_path / "context"
    assert main(["sample-data", "context", "--out", str(data), "--num-train", "1", "--num-val", "1", "--size",
                 "64"]) == 0
    assert main(["eval", NAMES["voc"], "--checkpoint", str(checkpoint), "--data-root", str(data),
                 "--identity-step", "short-range"]) == 2
    assert "identity step: head 'dense' has no long-range and short-range step" in capsys.readouterr().err
