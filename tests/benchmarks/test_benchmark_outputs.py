"""The benchmarks' outputs go through the output guard before any work, as the commands' do: every script's
parser is taken as its ``main`` builds it, each marked output (``add_output``) is pointed at a file of the
user's, and the script must stop with argparse's usage error naming the option (exit 2) and leave the file as
it was. A script's new output option is covered without edits; one that is not marked fails here by its name.
``benchmarks/gpu_check.py`` also names its reports before running a check."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
from pathlib import Path

import pytest

from isanet.cli.options import outputs

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(path for path in (REPO / "benchmarks").glob("*.py") if "def main(" in path.read_text())
#: Option names that say a script writes there: each must be marked with add_output.
OUTPUT_NAMES = {"--out", "--json", "--png", "--plot", "--work-dir", "--save", "--dir"}


class _Parsed(Exception):
    """Raised instead of parsing: carries the parser a script's ``main`` built."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


def script_parser(path: Path, monkeypatch) -> tuple[object, argparse.ArgumentParser]:
    """The script ``path`` loaded as a module, and the parser its ``main`` builds, caught at its first parse
    (before any work)."""
    monkeypatch.syspath_prepend(str(path.parent))  # scripts import each other as plain modules
    spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)

    def caught(self, args=None, namespace=None):
        raise _Parsed(self)

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", caught)
        with pytest.raises(_Parsed) as parsed:
            module.main([])
    return module, parsed.value.parser


def test_every_option_a_benchmark_writes_to_is_marked(monkeypatch):
    marked = {path.name for path in SCRIPTS if outputs(script_parser(path, monkeypatch)[1])}
    assert marked >= {"attention.py", "context_experiment.py", "finetune_voc_sample.py", "gpu_check.py",
                      "make_teaching_checkpoint.py", "train_precision.py"}
    unmarked = []
    for path in SCRIPTS:
        for call in ast.walk(ast.parse(path.read_text())):
            if (isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "add_argument"
                    and any(isinstance(arg, ast.Constant) and arg.value in OUTPUT_NAMES for arg in call.args)):
                unmarked.append(f"{path.name} {call.args[0].value}")
    assert not unmarked, f"output options made with add_argument, not add_output: {unmarked}"


@pytest.mark.parametrize("path", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_a_benchmark_never_writes_over_a_file_of_yours(path, tmp_path, monkeypatch, capsys):
    module, parser = script_parser(path, monkeypatch)
    for option, spec in outputs(parser).items():
        mine = tmp_path / f"mine{(spec.suffixes or ('.txt',))[0]}"  # a folder option given a file: refused too
        mine.write_text("my own results")
        argv = [option, str(mine)]
        for action in parser._actions:  # other required outputs: fresh names
            other = action.option_strings[0] if action.option_strings else action.dest
            if action.required and other != option:
                assert other in outputs(parser), f"{path.name}: give the required {other} a value here"
                argv += [other, str(tmp_path / f"new{outputs(parser)[other].suffixes[0]}")]
        with pytest.raises(SystemExit) as exit_:
            module.main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and f"error: {option} {mine}: " in err[-1], (path.name, option, err)
        assert mine.read_text() == "my own results"
        assert sorted(file.name for file in tmp_path.iterdir()) == [mine.name]  # nothing else written
        mine.unlink()


def test_gpu_check_names_a_report_of_yours_before_running_a_check(tmp_path, monkeypatch, capsys):
    module, _ = script_parser(REPO / "benchmarks" / "gpu_check.py", monkeypatch)
    (tmp_path / "gpu_report.md").write_text("my notes on the GPU")
    monkeypatch.setattr(module, "run_checks", lambda *args: pytest.fail("a check ran before the outputs were checked"))
    with pytest.raises(SystemExit) as exit_:
        module.main(["--device", "cpu", "--quick", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and f": error: --out {tmp_path / 'gpu_report.md'}: already exists and was not " \
        "written by isanet (no record in " in err[-1]
    assert sorted(file.name for file in tmp_path.iterdir()) == ["gpu_report.md"]
    assert (tmp_path / "gpu_report.md").read_text() == "my notes on the GPU"


def test_every_float_option_of_a_benchmark_is_finite_and_in_range(monkeypatch):
    """As the commands' (tests/test_bad_inputs.py): a bare ``float`` takes nan, inf and negatives."""
    floats = {f"{path.name} {action.option_strings[0]}": action for path in SCRIPTS
              for action in script_parser(path, monkeypatch)[1]._actions
              if action.type is not None and accepts(action.type, "0.5") and not accepts(action.type, "abc")}
    assert {"attention.py --memory-cap-gb", "finetune_voc_sample.py --lr", "reference_parity.py --rtol"} <= set(floats)
    for name, action in floats.items():
        assert action.type is not float and not any(accepts(action.type, text) for text in ("nan", "inf", "-1")), name


def accepts(parse, text: str) -> bool:
    try:
        parse(text)
    except (argparse.ArgumentTypeError, ValueError):
        return False
    return True
