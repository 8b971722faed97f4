import json
import subprocess
import sys

from isanet.cli import main


def test_zoo_table_and_show(capsys):
    assert main(["zoo", "--dataset", "ade20k"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 4 and all("ade20k" in line for line in lines[2:])
    assert main(["zoo", "--show", "isanet_r101-d8_769x769_80k_cityscapes"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert entry["test_cfg"] == {"mode": "slide", "crop_size": [769, 769], "stride": [513, 513]}


def test_bad_input_is_one_line_not_a_traceback(capsys):
    assert main(["zoo", "--show", "isanet_r50"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("isanet zoo: error: unknown ISANet zoo model 'isanet_r50'") and "Traceback" not in err


def test_console_script_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "isanet.cli", "zoo"], capture_output=True, text=True)
    assert result.returncode == 0 and "isanet_r50-d8_4xb4-20k_voc12aug-512x512" in result.stdout


def test_train_names_its_options_where_the_engine_names_fields():
    from dataclasses import fields

    from isanet.cli import build_parser, leaf_commands
    from isanet.cli.train import OPTIONS, option_names
    from isanet.engine.config import TrainConfig

    train_options = leaf_commands(build_parser())[("train",)]._option_string_actions
    assert set(OPTIONS) <= {field.name for field in fields(TrainConfig)}
    assert set(OPTIONS.values()) <= set(train_options)
    message = "TrainConfig.keep_checkpoints 0: out of range; TrainConfig.stop_after has no option"
    assert option_names(message) == "--keep 0: out of range; TrainConfig.stop_after has no option"
