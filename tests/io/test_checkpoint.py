import os

import pytest
import torch

import isanet
from isanet.io import checkpoint as checkpoint_module
from isanet.io.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    load_model_for,
    read_checkpoint,
    save_checkpoint,
)
from isanet.io.outputs import LEDGER
from isanet.notebook.teaching import teaching_checkpoint


def fresh(num_classes=5, **overrides):
    return isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=num_classes, **overrides)).eval()


def assert_same_weights(a, b):
    for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), key


def test_mmseg_format_round_trip(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "iter_10.pth", meta={"iter": 10, "CLASSES": ["a"] * 5})
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"meta", "state_dict"} and saved["meta"]["iter"] == 10
    model = fresh()
    report = load_checkpoint(model, path)
    assert_same_weights(model, tiny_model)
    assert report.meta["iter"] == 10 and report.reinitialised == []
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(model(x), tiny_model(x))


def test_raw_and_ddp_state_dicts_load(tiny_model, tmp_path):
    torch.save(tiny_model.state_dict(), tmp_path / "raw.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in tiny_model.state_dict().items()}}, tmp_path / "ddp.pth")
    for name in ("raw.pth", "ddp.pth"):
        model = fresh()
        load_checkpoint(model, tmp_path / name)
        assert_same_weights(model, tiny_model)


def test_numpy_meta_of_real_mmseg_checkpoints_is_accepted(tiny_model, tmp_path):
    import numpy as np
    path = tmp_path / "np_meta.pth"
    torch.save({"meta": {"seed": np.int64(3), "palette": np.zeros((2, 3), dtype=np.uint8)},
                "state_dict": tiny_model.state_dict()}, path)
    assert load_checkpoint(fresh(), path).meta["seed"] == 3


def test_fine_tuning_load_reinitialises_the_classifier(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "five.pth")
    model = fresh(num_classes=7)
    classifier_before = model.decode_head.conv_seg.weight.clone()
    report = load_checkpoint(model, path, reinit_classifier=True)
    assert report.reinitialised == ["auxiliary_head.conv_seg.bias", "auxiliary_head.conv_seg.weight",
                                    "decode_head.conv_seg.bias", "decode_head.conv_seg.weight"]
    assert "re-initialised" in str(report)
    assert torch.equal(model.decode_head.conv_seg.weight, classifier_before)
    assert torch.equal(model.backbone.stem[0].weight, tiny_model.backbone.stem[0].weight)


def test_wrong_class_count_names_the_fitting_zoo_entries(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "five.pth")
    with pytest.raises(CheckpointError, match=r"five.pth has 5 classes but the model has 21\. Zoo entries with "
                                              r"21 classes: isanet_r50-d8_4xb4-20k_voc12aug-512x512"):
        load_checkpoint(fresh(num_classes=21), path)


def test_wrong_depth_lists_missing_and_unexpected_keys(tmp_path):
    with torch.device("meta"):
        r50 = isanet.build_model("isanet_r50-d8_4xb2-40k_cityscapes-512x1024")
        r101 = isanet.build_model("isanet_r101-d8_4xb2-40k_cityscapes-512x1024")
    path = tmp_path / "r101.pth"
    torch.save({"state_dict": {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in r101.state_dict().items()}}, path)
    with pytest.raises(CheckpointError, match=r"ResNet-101, the model a ResNet-50.*unexpected \(306\): "
                                              r"backbone\.layer3\.10\.bn1\.bias"):
        load_checkpoint(r50, path)


def test_backbone_only_checkpoints_with_and_without_prefix(tiny_model, tmp_path):
    bare = {k: v for k, v in tiny_model.backbone.state_dict().items()}
    torch.save({"state_dict": {**bare, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}},
               tmp_path / "imagenet.pth")
    torch.save({f"backbone.{k}": v for k, v in bare.items()}, tmp_path / "prefixed.pth")
    for name in ("imagenet.pth", "prefixed.pth"):
        model = fresh()
        report = load_checkpoint(model, tmp_path / name, backbone_only=True)
        assert torch.equal(model.backbone.layer4[1].bn2.running_var, tiny_model.backbone.layer4[1].bn2.running_var)
    assert report.ignored == [] and "fc.weight" in load_checkpoint(fresh(), tmp_path / "imagenet.pth",
                                                                  backbone_only=True).ignored
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(fresh(), tmp_path / "imagenet.pth")


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": RunsCode()}, path)
    with pytest.raises(CheckpointError, match="evil.pth: refused .* nothing from it was executed"):
        load_checkpoint(fresh(), path)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


@pytest.mark.parametrize("content,message", [
    (None, "no such file"),
    (b"", "the file is empty"),
    (b"this is a text file, not a checkpoint\n", "not a PyTorch checkpoint"),
])
def test_missing_empty_and_foreign_files(tmp_path, content, message):
    path = tmp_path / "model.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"{path}.*{message}"):
        load_checkpoint(fresh(), path)


def test_truncated_file_is_reported(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "full.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated.pth: unreadable — truncated or not a PyTorch checkpoint "
                                              r"\(its zip archive is cut short or damaged\)$"):  # not miniz's paragraph
        load_checkpoint(fresh(), truncated)


def test_non_dict_and_tensorless_files(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    torch.save({"state_dict": {"a": 1}}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="list.pth: expected a dict"):
        load_checkpoint(fresh(), tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="empty.pth: holds no tensors"):
        load_checkpoint(fresh(), tmp_path / "empty.pth")


def test_save_is_atomic_and_leaves_no_temporary_on_failure(tiny_model, tmp_path, monkeypatch):
    target = save_checkpoint(tiny_model, tmp_path / "ckpt.pth")
    before = target.read_bytes()

    def broken_save(obj, f):
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(fresh(), target)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir() if p.name != LEDGER] == ["ckpt.pth"]


# ---------------------------------------------------------------- untrusted meta: checked before a model is built

@pytest.fixture()
def no_model_built(monkeypatch):
    """Fails the test if loading builds a real ISANet: a file's meta and weight shapes are checked first."""
    def refuse(config):
        raise AssertionError(f"a model was built for {config}")
    monkeypatch.setattr(checkpoint_module, "ISANet", refuse)


def with_meta(path, meta, state=None):
    """A small checkpoint file with ``meta`` and (default) one small tensor: 3 KB on disk."""
    torch.save({"meta": meta, "state_dict": state or {"decode_head.conv_seg.weight": torch.zeros(5, 64, 1, 1)}},
               path)
    return path


@pytest.mark.parametrize("change, message", [
    ({"channels": 30000}, r"channels must be 1 to 2048 \(four times the published 512\), got 30000"),
    ({"num_classes": 10**6}, r"num_classes must be 1 to 1024 \(ADE20K-Full, .* has 847\), got 1000000"),
    ({"down_factor": [6000, 6000]}, r"down_factor must be at most 1024 a side \(a larger block .*\), got "
                                    r"\(6000, 6000\)"),
    ({"backbone_width": 4096}, r"backbone_width must be 2 to 128"),
    ({"depth": "50"}, r"depth must be one of \(10, 18, 50, 101\), got '50'"),
    ({"head": ["isa"]}, r"head must be one of"),
])
def test_a_meta_out_of_bounds_is_refused_naming_the_file_before_a_model_is_built(tmp_path, no_model_built, change,
                                                                                  message):
    path = with_meta(tmp_path / "small.pth", {"model_config": {**isanet.ISANetConfig.tiny().to_dict(), **change}})
    assert path.stat().st_size < 4096
    with pytest.raises(CheckpointError, match=f"small.pth: its meta is not a model this kit can build: "
                                              f"ISANetConfig: {message}"):
        load_model(path)


@pytest.mark.parametrize("meta, message", [
    ({"model_config": [1, 2]}, "model_config must be a dict of ISANetConfig fields, got list"),
    ({"model_config": {"channel": 64}}, r"unknown ISANetConfig field\(s\) \['channel'\]"),
    ({"zoo_name": "isanet_r50-d8_4xb4-20k_voc12aug-512x512", "config": {"model_overrides": {"channels": 30000}}},
     "channels must be 1 to 2048"),
    ({"zoo_name": "isanet_r50-d8_4xb4-20k_voc12aug-512x512", "config": {"model_overrides": [1]}},
     "model_overrides must be a dict, got list"),
    ({"zoo_name": "resnet"}, "name no model: unknown ISANet zoo model 'resnet'"),
])
def test_a_meta_of_the_wrong_form_is_one_line_naming_the_file(tmp_path, no_model_built, meta, message):
    path = with_meta(tmp_path / "odd.pth", meta)
    with pytest.raises(CheckpointError, match=f"odd.pth: its meta is not a model this kit can build: .*{message}"):
        load_model(path)


def test_the_teaching_checkpoint_with_a_huge_down_factor_is_refused(tmp_path, no_model_built):
    saved = read_checkpoint(teaching_checkpoint())
    saved["meta"]["model_config"]["down_factor"] = [6000, 6000]  # the weights do not depend on it
    torch.save(saved, tmp_path / "teaching.pth")
    with pytest.raises(CheckpointError, match=r"teaching.pth: .*down_factor must be at most 1024 a side"):
        load_model(tmp_path / "teaching.pth")


def test_weights_are_checked_against_the_meta_before_a_model_is_built(tiny_model, tmp_path, no_model_built):
    state = {key: value for key, value in tiny_model.state_dict().items() if key.startswith("decode_head.conv_seg")}
    meta = {"model_config": isanet.ISANetConfig.tiny(channels=2048).to_dict()}  # in bounds; the weights say 64
    path = with_meta(tmp_path / "claims.pth", meta, state)
    with pytest.raises(CheckpointError, match=r"claims.pth does not fit the model\. missing \(\d+\): .*; shape "
                                              r"mismatch \(1\): decode_head\.conv_seg\.weight"):
        load_model(path)
    published = with_meta(tmp_path / "published.pth", {}, state)  # no meta: the zoo entry's architecture
    with pytest.raises(CheckpointError, match=r"published.pth does not fit the model\. missing"):
        load_model_for(published, "isanet_r50-d8_4xb4-20k_voc12aug-512x512", num_classes=5)


def test_the_teaching_checkpoint_still_loads_through_the_checks():
    model = load_model(teaching_checkpoint())
    assert model.config.down_factor == (8, 8) and model.config.backbone_width == 16
