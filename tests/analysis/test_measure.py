"""Profiling: the CPU memory tracker is exact, FLOPs are 2mnk for a matmul, running out of memory is a row,
and ``isanet bench attention`` writes complete rows and a ratio table."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from isanet.analysis.attention_bench import (
    attention_module,
    bench_attention,
    format_ratios,
)
from isanet.analysis.measure import (
    count_flops,
    measure,
    ratio_range,
    ratio_verdict,
    time_call,
    time_calls,
    time_samples,
)
from isanet.analysis.memory import LiveTensorTracker, MemoryCapExceeded, peak_memory
from isanet.cli import main

ROW_FIELDS = {"method", "kernel", "height", "width", "channels", "peak_memory_bytes", "flops", "time_ms", "status"}
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------ memory

def test_a_known_allocation_is_counted_exactly():
    assert peak_memory(lambda: torch.empty(1000, 1000)) == 4_000_000
    assert peak_memory(lambda: torch.randn(1000, 1000)) == 4_000_000


def test_tensors_from_before_the_call_are_the_baseline():
    weights = torch.randn(1000, 1000)
    assert peak_memory(lambda: weights.view(-1).add_(1).t()) == 0  # views and in-place ops allocate nothing


def test_intermediates_freed_before_the_end_count_at_their_peak():
    def chain() -> torch.Tensor:
        a = torch.ones(1000, 1000)  # 4 MB
        b = a * 2                   # 8 MB live
        del a                       # 4 MB live
        return b.sum()              # 4 MB + 4 bytes
    tracker = LiveTensorTracker()
    with tracker:
        result = chain()
    assert tracker.peak_bytes == 8_000_000
    assert tracker.live_bytes == result.untyped_storage().nbytes() == 4


def test_the_cap_refuses_an_op_before_it_allocates():
    with pytest.raises(MemoryCapExceeded, match="4,000,000"):
        peak_memory(lambda: torch.empty(1000, 1000), cap_bytes=3_999_999)
    assert peak_memory(lambda: torch.empty(1000, 1000), cap_bytes=4_000_000) == 4_000_000


@cuda_only
def test_cuda_peak_is_over_the_memory_already_allocated():
    resident = torch.randn(1000, 1000, device="cuda")
    peak = peak_memory(lambda: torch.empty(1000, 1000, device="cuda") + resident, device="cuda")
    assert 8_000_000 <= peak < 8_000_000 + 2 * 512 * 1024  # two 4 MB tensors, allocator rounding


# ------------------------------------------------------------------------------------------ flops, time

def test_matmul_flops_are_two_m_n_k():
    a, b = torch.randn(64, 48), torch.randn(48, 40)
    assert count_flops(lambda: a @ b) == 2 * 64 * 40 * 48
    meta = torch.empty(512, 256, device="meta"), torch.empty(256, 128, device="meta")
    assert count_flops(lambda: meta[0] @ meta[1]) == 2 * 512 * 128 * 256  # shapes are enough


def test_the_fused_cpu_attention_kernel_is_counted_like_two_matmuls():
    q = torch.randn(2, 1, 64, 16)  # 4-D: the CPU flash kernel, which FlopCounterMode does not know itself
    assert count_flops(lambda: F.scaled_dot_product_attention(q, q, q)) == 2 * (2 * 2 * 64 * 64 * 16)


def test_time_is_taken_after_warmup_over_the_repeats_interleaved():
    calls = []
    assert time_call(lambda: calls.append(1), repeats=4, warmup=2) >= 0
    assert len(calls) == 6
    calls.clear()
    times = time_calls({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=2, warmup=1)
    assert set(times) == {"a", "b"} and calls == ["a", "b"] * 3


# --------------------------------------------------------------------------------------------- measuring

def test_measure_reports_memory_flops_and_time_and_backward_costs_more():
    module = attention_module("isa", "matmul", channels=16, isa_channels=8, down_factor=(4, 4))
    x = torch.randn(1, 16, 12, 12)
    forward = measure(module, x, repeats=1, warmup=0)
    both = measure(module, x, backward=True, repeats=1, warmup=0)
    assert forward.status == both.status == "ok"
    assert 0 < forward.peak_memory_bytes < both.peak_memory_bytes
    assert 0 < forward.flops < both.flops and forward.time_ms > 0


def test_dense_costs_more_than_isa_and_flops_match_the_formula():
    channels, keys, side = 32, 16, 16
    rows = bench_attention([(side, side)], channels=channels, isa_channels=keys, kernels=["matmul"], repeats=1,
                           warmup=0)
    dense, isa = rows
    positions = side * side
    attention = 2 * positions * positions * (keys + channels)  # Q K^T and A V
    projections = 2 * positions * (2 * (channels * keys + keys * keys) + 2 * channels * channels)
    assert dense.flops == attention + projections
    assert dense.peak_memory_bytes > isa.peak_memory_bytes and dense.flops > isa.flops


def test_the_cap_changes_no_count():
    module = attention_module("isa", "matmul", channels=16, isa_channels=8, down_factor=(4, 4))
    x = torch.randn(1, 16, 12, 12)
    free, capped = measure(module, x, repeats=1, warmup=0), measure(module, x, repeats=1, warmup=0,
                                                                    memory_cap_bytes=2**30)
    assert (free.peak_memory_bytes, free.flops) == (capped.peak_memory_bytes, capped.flops)


def test_running_out_of_memory_is_a_row_not_a_crash():
    module = attention_module("dense", "matmul", channels=16, isa_channels=8)
    result = measure(module, torch.randn(1, 16, 32, 32), memory_cap_bytes=1_000_000)
    assert result.status == "oom" and result.peak_memory_bytes is None and result.time_ms is None
    assert result.flops > 0 and "cap" in result.error  # FLOPs still counted, from shapes


def test_asking_for_cuda_without_one_is_a_clear_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["bench", "attention", "--sizes", "8", "--device", "cuda"]) == 2
    assert "cuda" in capsys.readouterr().err.lower()


# --------------------------------------------------------------------------------------------------- CLI

def test_cli_writes_rows_with_every_field_and_prints_ratios(tmp_path, capsys):
    path, plot = tmp_path / "rows.json", tmp_path / "bench.png"
    code = main(["bench", "attention", "--sizes", "16", "24", "--channels", "32", "--isa-channels", "16",
                 "--repeats", "1", "--json", str(path), "--plot", str(plot)])
    assert code == 0
    rows = json.loads(path.read_text())
    assert len(rows) == 8  # 2 sizes x 2 kernels x 2 methods
    assert all(set(row) >= ROW_FIELDS and row["status"] == "ok" for row in rows)
    assert {(row["method"], row["kernel"], row["height"]) for row in rows} == {
        (m, k, s) for m in ("dense", "isa") for k in ("matmul", "sdpa") for s in (16, 24)}
    out = capsys.readouterr().out
    assert "memory dense/isa" in out and "24x24" in out
    assert plot.stat().st_size > 0


def test_cli_default_channels_and_oom_rows_under_a_cap(tmp_path, capsys):
    path = tmp_path / "rows.json"
    code = main(["bench", "attention", "--sizes", "8", "12x20", "--kernels", "matmul", "--repeats", "1",
                 "--memory-cap-gb", "0.001", "--json", str(path)])
    assert code == 0
    rows = json.loads(path.read_text())
    assert {row["channels"] for row in rows} == {512}
    assert {(row["height"], row["width"]) for row in rows} == {(8, 8), (12, 20)}
    oom = [row for row in rows if row["status"] == "oom"]
    assert oom and all(row["peak_memory_bytes"] is None and row["flops"] for row in oom)
    assert "oom" in capsys.readouterr().out


def test_ratio_table_pairs_dense_with_isa():
    rows = bench_attention([(8, 8)], channels=8, isa_channels=4, kernels=["sdpa"], repeats=1, warmup=0)
    table = format_ratios(rows)
    assert table.splitlines()[-1].split()[:2] == ["sdpa", "8x8"]


def test_time_samples_keep_every_repeat_and_a_ratio_says_what_its_spread_allows():
    ticks = iter([0.0, 0.002, 0.002, 0.003, 0.003, 0.007, 0.007, 0.008])  # a, b, a, b: 2, 1, 4, 1 ms
    samples = time_samples({"a": lambda: None, "b": lambda: None}, repeats=2, warmup=0, clock=lambda: next(ticks))
    assert samples == {"a": pytest.approx([2.0, 4.0]), "b": pytest.approx([1.0, 1.0])}
    low, high = ratio_range((min(samples["a"]), max(samples["a"])), (min(samples["b"]), max(samples["b"])))
    assert (low, high) == pytest.approx((2.0, 4.0))
    assert ratio_verdict(low, high) == "above 1 in every pairing of the repeats"
    assert ratio_verdict(0.5, 0.9) == "below 1 in every pairing of the repeats"
    assert ratio_verdict(0.8, 1.3) == "within the noise of this run (its range spans 1)"


def test_bench_rows_carry_the_spread_of_their_repeats():
    (dense, isa) = bench_attention([(8, 8)], channels=8, isa_channels=4, down_factor=(4, 4), kernels=("matmul",),
                                   repeats=3, warmup=0)
    for row in (dense, isa):
        fastest, slowest = row.time_range_ms
        assert 0 < fastest <= row.time_ms <= slowest and row.to_dict()["time_range_ms"] == (fastest, slowest)
