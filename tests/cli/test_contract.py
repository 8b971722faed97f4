"""The CLI contract (isanet/cli/errors.py, isanet/cli/options.py): every output option is marked, every shared
choice is the package's constant, and usage errors exit 2 while failures during the work exit 1."""

from __future__ import annotations

import argparse

import pytest

from isanet.cli import build_parser, main
from isanet.cli.errors import UsageError, usage_checks
from isanet.cli.options import Output, outputs
from isanet.models.attention import KERNELS
from isanet.runtime import DEVICES, PRECISIONS

#: Every option that names something a command writes, by command: the marks must be exactly these.
EXPECTED_OUTPUTS = {
    "zoo": {}, "export": {"--out": Output("file", (".onnx",))},
    "download": {"--dir": Output("dir")},
    "eval": {"--out": Output("file", (".json",)), "--confusion": Output("file", (".png",))},
    "predict": {"--out": Output("dir")},
    "train": {"--work-dir": Output("dir")},
    "bench attention": {"--json": Output("file", (".json",)), "--plot": Output("file", (".png", ".svg", ".pdf"))},
    "bench model": {"--json": Output("file", (".json",))},
    "sample-data": {"--out": Output("dir")},
    "sample-checkpoint": {"--out": Output("file", (".pth",))},
    "attention": {"--out": Output("file", (".html",))},
}
#: Option destinations that always name an output, whichever command has them.
OUTPUT_DESTS = {"out", "json", "plot", "confusion", "work_dir", "dir"}


def sub_commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every leaf sub-command parser under ``parser`` by its full name (``"bench model"``)."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found |= sub_commands(child, f"{prefix} {name}".strip()) or {f"{prefix} {name}".strip(): child}
    return found


COMMANDS = sub_commands(build_parser())


def test_the_walk_sees_every_command():
    assert set(COMMANDS) == set(EXPECTED_OUTPUTS)


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUTS))
def test_every_output_option_is_marked(name):
    parser = COMMANDS[name]
    marked = outputs(parser)
    assert marked == EXPECTED_OUTPUTS[name]
    unmarked = [action.option_strings[0] for action in parser._actions
                if action.dest in OUTPUT_DESTS and action.option_strings[0] not in marked]
    assert unmarked == []
    assert all(parser._option_string_actions[flag].metavar == output.metavar for flag, output in marked.items())


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUTS))
def test_shared_choices_are_the_package_constants(name):
    actions = {action.dest: action for action in COMMANDS[name]._actions}
    if "precision" in actions:
        assert tuple(actions["precision"].choices) == PRECISIONS
    if "kernels" in actions:
        assert tuple(actions["kernels"].choices) == KERNELS and actions["kernels"].default == ["matmul", "sdpa"]
    if "device" in actions:
        assert tuple(actions["device"].choices) in (DEVICES, tuple(d for d in DEVICES if d != "auto"))


def test_commands_with_precision_and_device_have_them():
    with_precision = {name for name, parser in COMMANDS.items() if "--precision" in parser._option_string_actions}
    assert with_precision == {"eval", "predict", "train", "bench model"}
    with_device = {name for name, parser in COMMANDS.items() if "--device" in parser._option_string_actions}
    assert with_device == {"eval", "predict", "train", "bench model", "bench attention", "attention"}


def test_usage_checks_turn_refusals_into_usage_errors_and_let_failures_through():
    with pytest.raises(UsageError, match=r"^--out x: is a folder$"), usage_checks():
        raise ValueError("--out x: is a folder\n(more detail)")
    with pytest.raises(UsageError, match="missing.pth: no such file or directory"), usage_checks():
        raise FileNotFoundError(2, "No such file or directory", "missing.pth")
    with pytest.raises(OSError, match="disk full"), usage_checks(errors=(ValueError,)):  # a failed write
        raise OSError("disk full")


def test_usage_errors_exit_2_and_work_failures_exit_1(tmp_path, capsys):
    assert main(["download", "isanet_nope", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("isanet download: error: unknown ISANet zoo model 'isanet_nope'")
    assert main(["download", "isanet_r50-d8_512x1024_40k_cityscapes", "--dir", str(tmp_path),
                 "--url", "http://127.0.0.1:9/absent-981bd763.pth"]) == 1  # nothing listens on port 9
    err = capsys.readouterr().err.strip()
    assert err.startswith("isanet download: error:") and "\n" not in err
    assert main(["export", "--checkpoint", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "missing.pth" in capsys.readouterr().err
