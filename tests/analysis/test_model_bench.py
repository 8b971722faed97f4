"""The whole-model bench: FLOPs with the attention matmuls, the variants side by side, the CLI table and JSON."""

import json

import pytest
import torch

import isanet
from isanet.analysis.model_bench import count_model_flops
from isanet.cli import main
from isanet.data.sample_checkpoint import random_state_dict
from isanet.models.isa import Partition

pytestmark = pytest.mark.usefixtures("one_thread")


def test_attention_flops_are_counted_and_match_the_isa_formula(tiny_model):
    """128x160 input -> 16x20 map, padded to 16x24: G = 2*3 blocks, B = 8*8 pixels per block, P = 384 pixels.
    Each stage's two matmuls (Q Kᵀ and A V) cost 2 * P * group size * (C_key + C_value)."""
    x = torch.zeros(1, 3, 128, 160)
    total, attention = count_model_flops(lambda m, t: isanet.predict(m, t), tiny_model, x)
    p = Partition(16, 20, 8, 8)
    pixels = p.padded_h * p.padded_w
    config = tiny_model.config
    widths = config.isa_channels + config.channels
    expected = 2 * pixels * (p.num_short_range_groups + p.num_long_range_groups) * widths
    assert attention == expected == 2 * 384 * (6 + 64) * (32 + 64)
    assert total > 100 * attention  # the backbone's convolutions are nearly everything


@pytest.fixture()
def tiny_zoo(monkeypatch):
    """The CLI's zoo model swapped for the tiny R-18 (5 classes), to keep the test fast."""
    def build(name, num_classes=None, **overrides):
        model = isanet.ISANet(isanet.ISANetConfig.tiny(**overrides))
        model.load_state_dict(random_state_dict(model, seed=1))
        return model
    monkeypatch.setattr("isanet.models.zoo.build_model", build)
    from isanet import runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)  # bf16 as on a CPU with AVX-512 BF16
    monkeypatch.setattr("isanet.models.optimize.BACKEND", "eager")  # the wiring; Inductor: tests/models


def test_cli_bench_model_prints_the_table_and_writes_json(tiny_zoo, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "model", "isanet_r50-d8_4xb4-20k_voc12aug-512x512", "--size", "96", "128",
                 "--precision", "fp32", "bf16", "--optimize", "--repeats", "1", "--warmup", "0", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    record = json.loads(out.read_text())
    labels = [row["label"] for row in record["rows"]]
    assert labels == ["pytorch fp32", "pytorch fp32 optimized", "pytorch bf16", "pytorch bf16 optimized"]
    rows = {row["label"]: row for row in record["rows"]}
    assert rows["pytorch fp32"]["pixel_agreement"] == 1.0 and rows["pytorch fp32"]["max_rel_diff"] == 0.0
    assert rows["pytorch fp32 optimized"]["max_rel_diff"] < 1e-5
    assert rows["pytorch bf16"]["precision"] == "bf16" and 1e-4 < rows["pytorch bf16"]["max_rel_diff"] < 0.05
    for row in record["rows"]:
        assert row["latency_ms"] > 0 and row["images_per_s"] == pytest.approx(1e3 / row["latency_ms"])
        assert row["gflops_per_s"] == pytest.approx(record["flops"] / (row["latency_ms"] * 1e-3) / 1e9)
        assert row["peak_gflops_per_s"] > 0
    # compiled code does not run under the tracker's dispatch mode: no figure is shown; a compile and break-even
    compiled = [label for label in labels if label.endswith("optimized")]
    assert all(rows[label]["peak_memory_bytes"] is None and rows[label]["compile_s"] > 0 for label in compiled)
    assert all(rows[label]["peak_memory_bytes"] > 0 and rows[label]["compile_s"] is None
               for label in labels if label not in compiled)
    assert "pytorch bf16 optimized: compile (first call less a steady one, wall clock)" in text
    assert record["size"] == [96, 128] and record["mode"] == "whole" and record["attention_flops"] > 0
    assert "a counter that skips them reports" in text and all(label in text for label in labels)


def test_cli_bench_model_onnx_row_and_slide(tiny_zoo, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "bench.json"
    code = main(["bench", "model", "isanet_r50-d8_4xb4-20k_voc12aug-512x512", "--size", "96", "160", "--mode",
                 "slide", "--crop", "96", "96", "--stride", "64", "64", "--onnx", "--repeats", "1", "--warmup", "0",
                 "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    rows = {row["label"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"pytorch fp32", "onnxruntime fp32"}
    assert rows["onnxruntime fp32"]["max_rel_diff"] < 1e-4 and rows["onnxruntime fp32"]["pixel_agreement"] == 1.0
    assert rows["onnxruntime fp32"]["peak_memory_bytes"] is None  # ONNX Runtime's memory is not PyTorch's to count
