"""``benchmarks/context_experiment.py`` resumes only the experiment a results file holds: the same task, iteration
count and recipe settings; a file begun under a recipe retuned since (another lr, a warm-up) is refused by name
before any run starts, so rows of two recipes never mix in one table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from isanet.engine.config import plain
from isanet.engine.recipes import TEACHING
from isanet.io.atomic import write_text_atomic

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "context_experiment.py"


def _script():
    spec = importlib.util.spec_from_file_location("context_experiment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results(path: Path, **fields) -> Path:
    row = {"head": "isa", "seed": 0, "iters": 1000, "mIoU": 92.0, "learnt": True, "cpu_s": 240.0}
    write_text_atomic(json.dumps({"rows": [row], "task": "context", "iters": None, **fields}), path)  # as the script
    return path


@pytest.mark.parametrize(("field", "value"), [("recipe_settings", {**plain(TEACHING.config_fields()), "lr": 0.01}),
                                              ("recipe_settings", None), ("task", "context-one-hop")])
def test_a_file_of_another_recipe_or_task_is_refused_before_any_run(tmp_path, capsys, field, value):
    fields = {"recipe_settings": plain(TEACHING.config_fields()), field: value}
    path = _results(tmp_path / "results.json", **fields)
    before = path.read_text()
    with pytest.raises(SystemExit) as stopped:
        _script().main(["--heads", "isa", "--seeds", "0", "1", "--json", str(path)])
    assert stopped.value.code == 2
    assert f"--json {path}: holds runs of {field}={value}, not " in capsys.readouterr().err
    assert path.read_text() == before


def test_a_resumed_file_keeps_the_costs_of_every_head_it_holds(tmp_path):
    """A second call with other heads (here: nothing left to run) recomputes the attention costs of every head in
    the file, not only of the heads it was given, so the table keeps its cost columns for the first call's heads."""
    path = _results(tmp_path / "results.json", recipe_settings=plain(TEACHING.config_fields()))
    result = json.loads(path.read_text())
    result["rows"].append({"head": "none", "seed": 0, "iters": 1000, "mIoU": 50.0, "learnt": False, "cpu_s": 210.0})
    write_text_atomic(json.dumps(result), path)
    assert _script().main(["--heads", "none", "--seeds", "0", "--json", str(path)]) == 0
    costs = json.loads(path.read_text())["attention_costs"]
    assert set(costs) == {"isa", "none"}
    assert costs["isa"]["mflops"] > 0 and costs["none"] == {"mflops": 0.0, "peak_kib": 0.0, "train_peak_kib": 0.0}
