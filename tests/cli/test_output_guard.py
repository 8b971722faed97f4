"""The output guard cannot forget an option: every marked output of every sub-command, found by walking the
parsers, is pointed at the command's own input, at a data-set image and at a symlink to the checkpoint; each is
refused with one line (exit 2) and every file keeps its sha256. A new output option is covered without edits."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import isanet
from isanet.cli import build_parser, leaf_commands, main
from isanet.cli.options import INPUT_MARK, outputs
from isanet.data.registry import write_sample_dataset
from isanet.io.checkpoint import save_checkpoint

VOC = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"


COMMANDS = leaf_commands(build_parser())
CASES = [(words, option) for words, parser in COMMANDS.items() for option in outputs(parser)]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(isanet.ISANet(isanet.ISANetConfig.tiny(num_classes=21)), folder / "model.pth")
    picture = folder / "photo.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(picture)
    voc_root = write_sample_dataset("voc", folder / "voc", num_train=1, num_val=1, size=64).parent
    return {"checkpoint": checkpoint, "init": checkpoint, "picture": picture, "data_root": voc_root}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dataset_image(files: dict[str, Path]) -> Path:
    return next(files["data_root"].rglob("JPEGImages/*.jpg"))


def value_for(action: argparse.Action, files: dict[str, Path]) -> str:
    """A valid-looking value for a required argument: the command's input files, a choice, a zoo name."""
    if getattr(action, INPUT_MARK, False):
        return str(files.get(action.dest, files["picture"]))
    return str(action.choices and next(iter(action.choices)) or VOC)


def argv_with(words: tuple[str, ...], option: str, target: Path, files: dict[str, Path]) -> list[str]:
    parser = COMMANDS[words]
    argv = list(words)
    for action in parser._actions:
        if option in action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        if not action.option_strings and action.nargs != "?":
            argv.append(value_for(action, files))
        elif action.required:
            argv += [action.option_strings[0], value_for(action, files)]
    return [*argv, option, str(target)]


def own_input(words: tuple[str, ...], files: dict[str, Path]) -> Path:
    """The file the command itself reads (inside its input folder when that input is a folder)."""
    marked = [action.dest for action in COMMANDS[words]._actions if getattr(action, INPUT_MARK, False)]
    first = files.get(marked[0], files["picture"]) if marked else files["picture"]
    return dataset_image(files) if first.is_dir() else first


def test_every_command_has_its_outputs_marked() -> None:
    assert {" ".join(words) for words, _ in CASES} >= {
        "eval", "predict", "train", "bench attention", "bench model", "sample-data", "sample-checkpoint",
        "attention", "export", "download"}


@pytest.mark.parametrize(("words", "option"), CASES, ids=[f"{' '.join(w)} {o}" for w, o in CASES])
@pytest.mark.parametrize("target_kind", ["own input", "data-set image", "symlink to the checkpoint"])
def test_an_output_never_replaces_what_the_user_gave(words, option, target_kind, files, tmp_path, capsys):
    link = tmp_path / f"link{(outputs(COMMANDS[words])[option].suffixes or ('.out',))[0]}"
    link.symlink_to(files["checkpoint"])
    target = {"own input": own_input(words, files), "data-set image": dataset_image(files),
              "symlink to the checkpoint": link}[target_kind]
    protected = [files["checkpoint"], files["picture"], dataset_image(files)]
    before = [sha(path) for path in protected]
    with _no_exit():
        code = main(argv_with(words, option, target, files))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"isanet {words[0]}: error: {option} "), err
    assert [sha(path) for path in protected] == before
    assert link.is_symlink() and link.resolve() == files["checkpoint"].resolve()


class _no_exit:
    """A context that fails the test if the command exits through argparse (the argv was not valid)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, traceback) -> bool:
        if kind is SystemExit:
            pytest.fail(f"argparse refused the argv: exit {value.code}")
        return False
