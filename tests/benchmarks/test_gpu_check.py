"""benchmarks/gpu_check.py: the CPU quick run CI keeps alive until a GPU arrives, and the rules of its report.

The whole ``--device cpu --quick`` run happens once (a module fixture, in a subprocess exactly as it is run by
hand): every check named, in order, with valid statuses, and every part that needs CUDA ``skipped`` while the
others pass. The budget and failure rules are checked on stand-in checks, so a check that hangs or breaks is
shown to be reported without stopping the ones after it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
#: The parts that need CUDA in a CPU run; every other part must pass there.
CUDA_PARTS = {"parity": {"tf32 matmul", "fp16 agreement"}, "amp": {"fp16 + GradScaler"},
              "model": {"R-50 fp16", "R-101 fp16"}, "explorer": {"capture vs cpu"},
              "flex": {"compiled flex on cuda"}, "compile": {"inductor on cuda"}}


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    return module


gpu_check = load_script()


@pytest.fixture(scope="module")
def cpu_quick(tmp_path_factory) -> tuple[dict, str, float]:
    out = tmp_path_factory.mktemp("report")
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)],
                            capture_output=True, text=True, cwd=REPO, timeout=900,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = json.loads((out / "gpu_report.json").read_text(encoding="utf-8"))
    return report, (out / "gpu_report.md").read_text(encoding="utf-8"), seconds


def test_cpu_quick_runs_every_check_and_skips_only_the_cuda_parts(cpu_quick):
    report, _, _ = cpu_quick
    assert [check["name"] for check in report["checks"]] == list(gpu_check.CHECKS)
    assert list(gpu_check.CHECKS) == ["parity", "amp", "ddp", "attention", "model", "explorer", "flex", "compile"]
    assert report["device"]["device"] == "cpu" and report["torch"] and report["quick"] is True
    for check in report["checks"]:
        assert set(check) >= {"name", "status", "seconds", "figures"}
        assert check["status"] == "pass", (check["name"], check["figures"])
        assert 0 < check["seconds"] <= check["budget_s"] + 5
        skipped = {name for name, part in check["figures"].items() if part["status"] == "skipped"}
        assert skipped == CUDA_PARTS.get(check["name"], set()), check["name"]
        assert all(part["status"] in gpu_check.STATUSES for part in check["figures"].values())
    parts = {check["name"]: check["figures"] for check in report["checks"]}
    assert parts["ddp"]["torchrun gloo"]["backend"] == "gloo" and parts["ddp"]["torchrun gloo"]["max_rel_diff"] == 0
    assert parts["amp"]["bf16"]["resume_max_rel_diff"] == 0  # resume is bitwise on a CPU
    assert parts["parity"]["fp32 sdpa"]["max_rel_vs_float64"] <= gpu_check.PARITY_RTOL
    assert {"dense matmul 32x32", "isa sdpa 32x32"} <= set(parts["attention"]["forward+backward"]["rows"])


def test_cpu_quick_writes_a_markdown_table_of_the_same_report(cpu_quick):
    report, text, seconds = cpu_quick
    assert "| GPU | none (device cpu) |" in text and f"| torch | {report['torch']} |" in text
    for check in report["checks"]:
        assert f"| **{check['name']}** | | **{check['status']}** |" in text
    assert "| | tf32 matmul | skipped | | reason: needs CUDA |" in text
    assert "model, R-101:" in text and "| fp32 |" in text  # the measured rows as their own tables
    print(f"gpu_check --device cpu --quick: {seconds:.0f} s")


def test_a_check_past_its_budget_or_broken_fails_alone(tmp_path, monkeypatch):
    def hangs(ctx, parts):
        parts.run("sleep", lambda figures: ctx.run([sys.executable, "-c", "import time; time.sleep(60)"], "sleep"))
        parts.run("after the budget", lambda figures: figures.update(ran=True))

    def breaks(ctx, parts):
        parts.run("fine", lambda figures: figures.update(value=1.5))
        parts.run("broken", lambda figures: 1 / 0)
        parts.run("cuda", lambda figures: None, cuda_only=True)

    def skips(ctx, parts):
        parts.skip("only", "needs CUDA")

    monkeypatch.setattr(gpu_check, "CHECKS", {"hangs": (hangs, 1, 1), "breaks": (breaks, 30, 30),
                                              "skips": (skips, 30, 30)})
    started = time.monotonic()
    results = {result["name"]: result for result in gpu_check.run_checks(list(gpu_check.CHECKS), "cpu", True,
                                                                         tmp_path)}
    assert time.monotonic() - started < 20  # the sleeping command was killed at its check's budget
    hung = results["hangs"]["figures"]
    assert results["hangs"]["status"] == "fail"
    assert hung["sleep"]["error"] == "sleep: killed after 1 s, the check's budget"
    assert hung["after the budget"] == {"status": "fail", "error": "not run: the check's budget was spent"}
    broken = results["breaks"]["figures"]
    assert results["breaks"]["status"] == "fail"
    assert broken["fine"] == {"status": "pass", "value": 1.5}
    assert broken["broken"]["error"] == "ZeroDivisionError: division by zero"
    assert broken["cuda"] == {"status": "skipped", "reason": "needs CUDA"}
    assert results["skips"]["status"] == "skipped"


def test_the_compile_part_reads_bench_models_compiled_rows_and_names_the_missing_ones(tmp_path, monkeypatch):
    """The CUDA compile part is ``bench model --optimize``; here in-process on a CPU with Dynamo's cheap backend,
    where fp16 runs as fp32 and so has no row of its own."""
    from isanet.cli import main

    monkeypatch.setattr("isanet.models.optimize.BACKEND", "eager")
    ctx = gpu_check.Context("cpu", True, tmp_path, deadline=time.monotonic() + 300)
    monkeypatch.setattr(ctx, "isanet", lambda *args: main(list(map(str, args))))
    parts = gpu_check.Parts(ctx)
    with pytest.warns(UserWarning, match="fp16 autocast is for CUDA"):
        parts.run("compiled", gpu_check.bench_model_part(ctx, "compiled", gpu_check.R50, ["fp32", "fp16"], "--size",
                                                         32, 32, "--optimize", "--repeats", 1, "--warmup", 0))
    part = parts.items["compiled"]
    assert part["status"] == "fail" and part["error"] == "no row for fp16, fp16 optimized"
    rows = part["rows"]
    assert list(rows) == ["fp32", "fp32 optimized"]
    assert rows["fp32"]["agreement_percent"] == 100.0 and "compile_s" not in rows["fp32"]
    assert rows["fp32 optimized"]["compile_s"] > 0 and rows["fp32 optimized"]["max_rel_diff"] < 1e-5
    compiled, plain = rows["fp32 optimized"], rows["fp32"]
    # JSON has no infinity: a compiled row no faster than the plain one never pays off, written as null
    assert (compiled["break_even_images"] is None) == (compiled["latency_ms"] >= plain["latency_ms"])


def test_a_failing_command_reports_its_last_error_line(tmp_path):
    ctx = gpu_check.Context("cpu", True, tmp_path, deadline=time.monotonic() + 60)
    with pytest.raises(gpu_check.PartFailed, match=r"^isanet bench model: exit status [12]: .*nosuch"):
        ctx.isanet("bench", "model", "nosuch")


def test_bad_options_name_the_option(capsys):
    with pytest.raises(SystemExit) as stop:
        gpu_check.main(["--only", "nosuch"])
    assert stop.value.code == 2 and "--only" in capsys.readouterr().err
    if not gpu_check.torch.cuda.is_available():
        with pytest.raises(SystemExit):
            gpu_check.main(["--device", "cuda"])
        assert "--device cuda: no CUDA device" in capsys.readouterr().err


def test_the_gpu_budgets_fit_one_call_of_four_minutes():
    assert sum(budget for _, budget, _ in gpu_check.CHECKS.values()) <= gpu_check.GPU_SECONDS == 340
