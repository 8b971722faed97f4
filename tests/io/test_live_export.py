"""The live page's ONNX graph (:mod:`isanet.io.live_export`): RGBA bytes in; the labels and both ISA steps' weights
that the kit's own probe gives out, in PyTorch and in ONNX Runtime; heads without ISA's two steps refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import isanet
from isanet.analysis.probe import capture
from isanet.data.context import recolour_beacon
from isanet.io.checkpoint import load_model
from isanet.io.live_export import INPUT_NAME, OUTPUT_NAMES, LiveModel, export_live
from isanet.notebook.teaching import SHIPPED_CHECKPOINT, teaching_samples, teaching_test_settings, teaching_transform


@pytest.fixture(scope="module")
def teaching():
    torch.set_num_threads(1)
    settings = teaching_test_settings()
    model = load_model(SHIPPED_CHECKPOINT).eval()
    return model, LiveModel(model, settings.mean, settings.std).eval(), teaching_samples()[2]


def _rgba(image: np.ndarray) -> np.ndarray:
    return np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=-1)[None]


def test_the_live_graph_gives_the_probes_weights_and_the_models_labels(teaching):
    model, live, sample = teaching
    image, _ = recolour_beacon(sample["image"], sample["label"], 0)
    with torch.no_grad():
        labels, long_range, short_range = live(torch.from_numpy(_rgba(image)))
    captured = capture(model, teaching_transform()(image)[None])
    assert labels.dtype == torch.int32 and labels.shape == (160, 160)
    assert torch.equal(labels, captured.logits.argmax(1)[0].to(torch.int32))
    assert long_range.shape == (64, 9, 9) and short_range.shape == (9, 64, 64)  # 8 x 8 offsets, 3 x 3 blocks
    assert torch.allclose(long_range, captured.isa.long_range[0], atol=1e-6)
    assert torch.allclose(short_range, captured.isa.short_range[0], atol=1e-6)
    assert torch.allclose(short_range.sum(-1), torch.ones(9, 64), atol=1e-5)  # softmax rows


def test_onnx_runtime_runs_the_exported_graph_as_pytorch_does(teaching, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model, live, sample = teaching
    path = export_live(model, tmp_path / "live.onnx", (160, 160), live.mean.flatten().tolist(),
                       live.std.flatten().tolist())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [item.name for item in session.get_inputs()] == [INPUT_NAME]
    assert [item.name for item in session.get_outputs()] == list(OUTPUT_NAMES)
    rgba = _rgba(sample["image"])
    outputs = session.run(None, {INPUT_NAME: rgba})
    with torch.no_grad():
        expected = live(torch.from_numpy(rgba))
    assert (outputs[0] == expected[0].numpy()).mean() >= 0.999
    for got, want in zip(outputs[1:], expected[1:], strict=True):
        assert np.abs(got - want.numpy()).max() <= 1e-5


def test_a_head_without_isas_two_steps_is_refused():
    model = isanet.build_model("isanet_r50-d8_4xb4-20k_voc12aug-512x512", num_classes=5, head="dense", depth=10,
                               backbone_width=16, channels=64, isa_channels=32, aux_channels=32)
    with pytest.raises(ValueError, match="the model's head is DenseHead, not ISAHead"):
        LiveModel(model, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
