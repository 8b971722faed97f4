#!/usr/bin/env python3
"""Set up the kit in a local .venv and open it, or test it. Needs only Python 3.10+ and pip.

    python3 kit.py lab     # set up, then open the notebooks in JupyterLab
    python3 kit.py test    # set up, then run the unit tests and every notebook (tests/test_notebook_runs.py;
                           # with ISANET_SITE_DIR=site it checks the copies `site` executed instead)
    python3 kit.py lint    # set up, then run ruff (configured in pyproject.toml)
    python3 kit.py site    # set up, then execute the notebooks (full settings; --quick: the test-runner ones)
                           # and write them as HTML pages into site/

torch is installed first and pinned (an unpinned torch would pull gigabytes of CUDA packages), then the
package with its [dev] extras. A stamp file skips the installs when nothing changed since the last run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TORCH = "torch==2.13.0"
PYTHON_MIN = (3, 10)
TEST_ARGS = ["-m", "pytest", "tests"]
LINT_ARGS = ["-m", "ruff", "check", "."]
COMMANDS = ("lab", "test", "lint", "site")


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*args: str | os.PathLike) -> None:
    print("+", " ".join(map(str, args)), flush=True)
    subprocess.run([str(arg) for arg in args], check=True, cwd=ROOT)


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
    return venv_python()


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
        return subprocess.call(lab_command(python), cwd=ROOT)
    if argv[0] == "site":  # extra arguments: notebook names, --out DIR
        return subprocess.call([str(python), "-m", "isanet.notebook.site", *argv[1:]], cwd=ROOT)
    return subprocess.call([str(python), *(TEST_ARGS if argv[0] == "test" else LINT_ARGS)], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
