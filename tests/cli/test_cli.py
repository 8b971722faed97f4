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
