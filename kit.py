#!/usr/bin/env python3
"""Set up the kit in a local .venv and open it, or test it. Needs only Python 3.10+ and pip.

    python3 kit.py lab     # set up, then open the notebooks in JupyterLab
    python3 kit.py test    # set up, then run the unit tests and every notebook (tests/test_notebook_runs.py;
                           # with ISANET_SITE_DIR=site it checks the copies `site` executed instead)
    python3 kit.py lint    # set up, then run ruff (configured in pyproject.toml)
    python3 kit.py site    # set up, then execute the notebooks (full settings; --quick: the test-runner ones)
                           # and write them as HTML pages into site/

torch is installed first and pinned (an unpinned torch would pull gigabytes of CUDA packages), then the
package with its [dev] extras, then, where npm is installed, the site's browser files (``web/package-lock.json``:
MathJax 3) with ``npm ci``. Stamp files skip the installs when nothing changed since the last run.

Every step runs as a child of kit.py (:func:`call`), and kit.py never ends before it: SIGTERM, SIGINT or SIGHUP
sent to kit.py is passed on to the child (a Ctrl-C at the terminal reaches it directly), kit.py waits for it to
stop (killing it after STOP_GRACE seconds), then exits 128 + the signal's number. So nothing kit.py started is
still running, or writing, once kit.py has exited; the site build in turn stops its notebook kernel.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
WEB = ROOT / "web"  # the browser files the site copies in, pinned by package-lock.json
TORCH = "torch==2.13.0"
PYTHON_MIN = (3, 10)
TEST_ARGS = ["-m", "pytest", "tests"]
LINT_ARGS = ["-m", "ruff", "check", "."]
COMMANDS = ("lab", "test", "lint", "site")
#: The signals that stop kit.py: each is passed on to its child, which gets this long to stop before it is killed.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))
STOP_GRACE = 30.0


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*args: str | os.PathLike) -> None:
    print("+", " ".join(map(str, args)), flush=True)
    status = call([str(arg) for arg in args])
    if status:
        raise subprocess.CalledProcessError(status, [str(arg) for arg in args])


def _reached_by_terminal(signum: int, child: subprocess.Popen) -> bool:
    """Whether ``signum`` has reached ``child`` already: a Ctrl-C goes from the terminal to its whole foreground
    process group, which holds the child when it holds kit.py (Windows: the console sends it to every process
    attached to it). Passing it on again would interrupt the child's own clean-up."""
    if signum != signal.SIGINT:
        return False
    if os.name == "nt":
        return True
    try:
        terminal = os.open("/dev/tty", os.O_RDONLY)
    except OSError:  # no controlling terminal: the signal was sent to kit.py alone
        return False
    try:
        return os.tcgetpgrp(terminal) == os.getpgid(child.pid)
    except OSError:
        return False
    finally:
        os.close(terminal)


def call(args: list[str]) -> int:
    """Run ``args`` in the repository to its end and return its exit status, with kit.py's stop signals passed
    on to it (see the module docstring): 128 + the signal's number when one was passed on."""
    received: list[int] = []  # stop signals kit.py got
    passed: list[tuple[int, float]] = []  # those it passed on, with when the child must have stopped by
    child: subprocess.Popen | None = None

    def pass_on(signum: int) -> None:
        if child is not None and child.poll() is None and not _reached_by_terminal(signum, child):
            child.send_signal(signum if os.name != "nt" else signal.SIGTERM)
            passed.append((signum, time.monotonic() + STOP_GRACE))

    def on_signal(signum: int, frame) -> None:
        received.append(signum)
        pass_on(signum)

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        child = subprocess.Popen(args, cwd=ROOT)
        for signum in received[:1]:  # one that came while the child was being started
            pass_on(signum)
        while True:
            try:
                status = child.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                if passed and time.monotonic() > passed[0][1]:
                    child.kill()
    finally:
        if child is not None and child.poll() is None:  # kit.py itself failed: never leave the child behind
            child.kill()
            child.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if passed:
        return 128 + passed[0][0]
    return 128 - status if status < 0 else status


def setup() -> Path:
    """Create or reuse .venv; install torch (pinned) first, then the kit with [dev]."""
    if sys.version_info < PYTHON_MIN:
        sys.exit(f"kit.py needs Python {'.'.join(map(str, PYTHON_MIN))}+, this is {sys.version.split()[0]}")
    if not venv_python().exists():
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".isanet-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + TORCH.encode()).hexdigest()
    if not stamp.exists() or stamp.read_text() != wanted:
        python = venv_python()
        run(python, "-m", "pip", "install", "--quiet", TORCH)
        run(python, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
        stamp.write_text(wanted)
    setup_web()
    return venv_python()


def setup_web() -> None:
    """``npm ci`` the site's browser files (``web/``) when the lock file changed; without npm, say what the site
    then lacks (its pages show formulas as TeX source) and go on."""
    lock = WEB / "package-lock.json"
    stamp = WEB / "node_modules" / ".isanet-installed"
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    npm = shutil.which("npm")
    if npm is None:
        print("kit.py: note: npm is not installed, so the site's pages will show formulas as TeX source "
              "(install Node.js, then run kit.py again)", flush=True)
        return
    run(npm, "ci", "--prefix", WEB, "--no-audit", "--no-fund")
    stamp.write_text(wanted)


def lab_command(python: Path) -> list[str]:
    """JupyterLab on the notebooks. Containers often run as root, which JupyterLab refuses without a flag."""
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return [str(python), "-m", "jupyterlab", "notebooks", *(["--allow-root"] if as_root else [])]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS or (len(argv) > 1 and argv[0] != "site"):
        print(__doc__)
        return 2
    python = setup()
    if argv[0] == "lab":
        return call(lab_command(python))
    if argv[0] == "site":  # extra arguments: notebook names, --out DIR
        return call([str(python), "-m", "isanet.notebook.site", *argv[1:]])
    return call([str(python), *(TEST_ARGS if argv[0] == "test" else LINT_ARGS)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
