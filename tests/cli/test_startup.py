"""What ``isanet --help`` loads: the commands import their own machinery only when they run (what the
:mod:`isanet.cli` docstring promises), while torch comes with any ``isanet`` import."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

#: What no command's parser needs: each command imports it in its own ``func``.
DEFERRED = ("isanet.engine.trainer", "isanet.evaluation.evaluate", "isanet.evaluation.predict_files",
            "isanet.analysis.model_bench", "isanet.io.export", "isanet.notebook.explorer_html", "matplotlib",
            "onnxruntime")


def test_building_every_parser_leaves_the_commands_machinery_unimported() -> None:
    assert all(importlib.util.find_spec(name) for name in DEFERRED), "a module here was renamed: follow it"
    script = ("import json, sys\nfrom isanet.cli import build_parser, leaf_commands\n"
              "leaf_commands(build_parser())\n"
              f"print(json.dumps({{name: name in sys.modules for name in {DEFERRED + ('torch',)!r}}}))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                       check=True).stdout)
    assert not [name for name in DEFERRED if loaded[name]], loaded
    assert loaded["torch"], "torch is loaded by any isanet import: the docstring says so; update it if not"
