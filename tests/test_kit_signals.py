"""``kit.py`` never ends before what it started: a SIGTERM or SIGINT sent to kit.py reaches its child, kit.py
waits for the child to stop (killing one that ignores it after ``STOP_GRACE``), and once kit.py has exited the
child is gone, so nothing it started writes afterwards. Real processes: ``kit.py site`` with a tiny stand-in
child in place of the site build (which takes minutes), bounded in time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX signals")

#: Stands in for ``python -m isanet.notebook.site --out DIR``: says it started, then would write index.html.
STAND_IN = """
import os, signal, sys, time
from pathlib import Path
out = Path(sys.argv[sys.argv.index("--out") + 1])
if {ignore}:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
(out / "started").write_text(str(os.getpid()))
try:
    time.sleep(60)
except KeyboardInterrupt:
    sys.exit(130)
(out / "index.html").write_text("written after kit.py was stopped")
"""
#: ``kit.py site --out DIR`` with the stand-in as the set-up's Python (a real build would take minutes).
DRIVER = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("kit", {kit!r})
kit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kit)
kit.setup = lambda: Path({python!r})
kit.STOP_GRACE = 1.0
sys.exit(kit.main(["site", "--out", {out!r}]))
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(("signum", "ignore"), [(signal.SIGTERM, False), (signal.SIGINT, False),
                                                 (signal.SIGTERM, True)],
                         ids=["SIGTERM", "SIGINT", "SIGTERM ignored by the child"])
def test_a_stop_signal_to_kit_py_stops_its_child_before_kit_py_exits(signum, ignore, tmp_path):
    child_script = tmp_path / "stand_in.py"
    child_script.write_text(STAND_IN.format(ignore=ignore))
    python = tmp_path / "python"  # what kit.py's set-up returns, standing in for .venv/bin/python
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {child_script} \"$@\"\n")
    python.chmod(0o755)
    out = tmp_path / "site"
    out.mkdir()
    driver = DRIVER.format(kit=str(REPO / "kit.py"), python=str(python), out=str(out))
    kit = subprocess.Popen([sys.executable, "-c", driver], start_new_session=True,  # no terminal: kill -s alone
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    child = None
    try:
        deadline = time.monotonic() + 30
        while not (out / "started").is_file() or not (out / "started").read_text():
            assert time.monotonic() < deadline and kit.poll() is None, "the stand-in child never started"
            time.sleep(0.02)
        child = int((out / "started").read_text())
        sent = time.monotonic()
        kit.send_signal(signum)
        assert kit.wait(timeout=20) == 128 + signum
        assert (time.monotonic() - sent >= 1.0) == ignore  # a child that ignores it is killed after the grace
        assert not alive(child), "kit.py exited while its child was still running"
        assert not (out / "index.html").exists()
    finally:
        if kit.poll() is None:
            kit.kill()
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)
