"""``isanet bench attention --methods``: rows for every efficient attention, FLOPs that match each method's
affinity count, sdpa rows that say when a pattern was computed explicitly, and dense/ISA rows unchanged."""

from __future__ import annotations

import json

import pytest

from isanet.analysis.attention_bench import attention_module, bench_attention, format_rows
from isanet.cli import build_parser, main
from isanet.models.efficient.registry import METHODS

pytestmark = pytest.mark.usefixtures("one_thread")
CHANNELS, KEYS, HEIGHT, WIDTH, SIZE = 16, 8, 12, 20, 8


def test_cli_lists_the_registry_methods(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "attention", "--methods", "linear"])
    assert f"choose from {', '.join(map(repr, METHODS))}" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["dense", "ccnet", "axial", "window", "strided"])
def test_flops_are_the_affinity_count_plus_the_projections(method: str) -> None:
    """Every method computes exactly the affinities it claims: ``2 * entries * (C_key + C)`` multiply-adds for
    ``Q Kᵀ`` and ``A V``, plus one set of 1x1 projections per hop over the (unpadded) map."""
    rows = bench_attention([(HEIGHT, WIDTH)], channels=CHANNELS, isa_channels=KEYS, down_factor=(SIZE, SIZE),
                           kernels=["matmul"], methods=[method], repeats=1, warmup=0)
    module = attention_module(method, "matmul", CHANNELS, KEYS, (SIZE, SIZE))
    positions = HEIGHT * WIDTH
    projections = 2 * positions * (2 * (CHANNELS * KEYS + KEYS * KEYS) + 2 * CHANNELS * CHANNELS)
    attention = 2 * module.affinity_entries(HEIGHT, WIDTH) * (KEYS + CHANNELS)
    assert rows[0].flops == attention + len(module.relations()) * projections


def test_cli_gives_rows_for_every_method(tmp_path, capsys) -> None:
    path = tmp_path / "rows.json"
    code = main(["bench", "attention", "--methods", *METHODS, "--sizes", f"{HEIGHT}x{WIDTH}",
                 "--channels", str(CHANNELS), "--isa-channels", str(KEYS), "--down-factor", "4", "4",
                 "--repeats", "1", "--json", str(path)])
    assert code == 0
    rows = json.loads(path.read_text())
    assert [(row["method"], row["kernel"]) for row in rows] == [
        (method, kernel) for kernel in ("matmul", "sdpa") for method in METHODS]
    assert all(row["status"] == "ok" and row["flops"] > 0 and row["peak_memory_bytes"] > 0 and row["time_ms"] > 0
               for row in rows)
    explicit = {row["method"] for row in rows if row["extra"]["computed_with"] != row["kernel"]}
    assert explicit == {"ccnet", "strided"}
    out = capsys.readouterr().out
    assert "sdpa*" in out and "* ccnet, strided: no sdpa form" in out
    assert "memory dense/isa" in out  # the ratio table is still there

    # dense and ISA measure the same with or without the other methods beside them
    alone = bench_attention([(HEIGHT, WIDTH)], channels=CHANNELS, isa_channels=KEYS, down_factor=(4, 4),
                            methods=["dense", "isa"], repeats=1, warmup=0)
    beside = [row for row in rows if row["method"] in ("dense", "isa")]
    assert [(r.method, r.kernel, r.flops, r.peak_memory_bytes) for r in alone] == [
        (r["method"], r["kernel"], r["flops"], r["peak_memory_bytes"]) for r in beside]


def test_format_rows_marks_explicit_sdpa_rows() -> None:
    rows = bench_attention([(8, 8)], channels=8, isa_channels=4, down_factor=(4, 4), kernels=["sdpa"],
                           methods=["axial", "ccnet"], repeats=1, warmup=0)
    lines = format_rows(rows).splitlines()
    assert lines[2].split()[:2] == ["axial", "sdpa"] and lines[3].split()[:2] == ["ccnet", "sdpa*"]
    assert lines[-1] == "* ccnet: no sdpa form for this pattern; affinities computed explicitly (matmul)"


def test_format_rows_shows_each_time_with_the_range_of_its_repeats() -> None:
    """A time is printed as the median with the fastest and slowest repeat beside it, so a reader sees the spread
    before reading a difference."""
    rows = bench_attention([(8, 8)], channels=8, isa_channels=4, down_factor=(4, 4), kernels=["matmul"],
                           methods=["axial"], repeats=3, warmup=0)
    fastest, slowest = rows[0].time_range_ms
    assert fastest <= rows[0].time_ms <= slowest
    line = format_rows(rows).splitlines()[2]
    assert f"{rows[0].time_ms:.1f} ({fastest:.1f}-{slowest:.1f})" in line


def test_window_and_strided_need_a_square_down_factor() -> None:
    with pytest.raises(ValueError, match="window takes a square down_factor"):
        attention_module("window", "matmul", 8, 4, (4, 8))


def test_flex_with_backward_on_a_cpu_is_named_by_what_ran() -> None:
    """torch's CPU flex kernel has no backward: the kit computes the pattern as masked matmul, and says so in
    every row (not ``flex``), one per method (no token order), measured like any matmul row."""
    rows = bench_attention([(8, 8)], channels=8, isa_channels=4, down_factor=(4, 4), kernels=["flex"],
                           backward=True, orders=["row", "group"], repeats=1, warmup=0)
    assert [(row.method, row.kernel, row.extra) for row in rows] == [
        (method, "matmul", {"computed_with": "matmul", "asked_kernel": "flex", "masked": True})
        for method in ("dense", "isa")]
    assert all(row.status == "ok" and row.flops > 0 and row.peak_memory_bytes > 0 for row in rows)
    table = format_rows(rows).splitlines()
    assert [line.split()[1] for line in table[2:4]] == ["matmul+mask", "matmul+mask"] and "flex" not in table[2]
    assert table[-1].startswith("matmul+mask: flex has no backward on a CPU; the same pattern ran as matmul")
