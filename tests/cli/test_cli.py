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


def test_torch_compile_chatter_stays_off_the_terminal(monkeypatch):
    """Dynamo's recompile-limit warning (five lines of torch's advice, written by torch's own log handler) is
    torch's business in a normal run; a run with ISANET_DEBUG=1 shows it."""
    import io
    import logging

    import torch

    from isanet.cli import zoo

    def recompiling(args) -> int:  # what a flex bench over many map sizes meets
        torch._dynamo.reset()
        twice = torch.compile(lambda x: x * 2, backend="eager", dynamic=False)
        with torch._dynamo.config.patch(recompile_limit=1):
            twice(torch.zeros(2))
            twice(torch.zeros(3))
        return 0

    monkeypatch.setattr(zoo, "run", recompiling)
    handler = next(handler for handler in logging.getLogger("torch._dynamo").handlers
                   if isinstance(handler, logging.StreamHandler))
    printed = io.StringIO()
    terminal = handler.setStream(printed)  # where torch's handler writes: the terminal, in a real run
    try:
        assert main(["zoo"]) == 0
        assert printed.getvalue() == ""
        monkeypatch.setenv("ISANET_DEBUG", "1")
        assert main(["zoo"]) == 0
        assert "hit config.recompile_limit (1)" in printed.getvalue()
    finally:
        handler.setStream(terminal)
