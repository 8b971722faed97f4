"""Start a throw-away JupyterLab for browser tests, and find the system Chromium.

``JupyterLab(root)`` runs ``python -m jupyterlab`` (this interpreter's) on 127.0.0.1, a free port and a random
token, serving ``root``, with its own temporary settings, workspaces, config and runtime folders, so nothing
from a person's own set-up (a saved workspace, a password, an extension setting) changes what the test sees:

* every cell and output stays in the DOM (``windowingMode: none``), so a test can find widgets anywhere;
* no news or update toasts, and no autosave (a test must never write outputs into a notebook).

Use it as a context manager; the server is stopped (terminate, then kill) and its folders removed on exit.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
#: Debian Chromium on a closed network: without the networking flags it stalls trying to reach Google.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]

SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


def find_chromium() -> str | None:
    """The system Chromium (Debian's ``chromium`` package), never a downloaded one."""
    explicit = os.environ.get("ISANET_CHROMIUM")
    for candidate in ([explicit] if explicit else []) + list(CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLab:
    """A JupyterLab server serving ``root`` on 127.0.0.1 (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, startup_timeout: float = 90.0,
                 log_path: str | os.PathLike | None = None):
        self.root = Path(root).resolve()
        self.startup_timeout = startup_timeout
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self._home: Path | None = None
        self._log = None

    def url(self, path: str = "lab") -> str:
        """``base_url/path`` with the token, e.g. ``url("lab/tree/x.ipynb")``."""
        return f"{self.base_url}/{path.lstrip('/')}?token={self.token}"

    def _write_settings(self, settings_dir: Path) -> None:
        for name, values in SETTINGS.items():
            path = settings_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))

    def start(self) -> JupyterLab:
        self._home = Path(tempfile.mkdtemp(prefix="isanet-lab-"))
        folders = {name: self._home / name for name in ("settings", "workspaces", "config", "runtime")}
        for folder in folders.values():
            folder.mkdir()
        self._write_settings(folders["settings"])
        env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(folders["settings"]),
                   JUPYTERLAB_WORKSPACES_DIR=str(folders["workspaces"]), JUPYTER_CONFIG_DIR=str(folders["config"]),
                   JUPYTER_RUNTIME_DIR=str(folders["runtime"]), PYTHONUNBUFFERED="1")
        env.pop("JUPYTER_TOKEN", None)
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                   "--ServerApp.port_retries=0", f"--ServerApp.token={self.token}", "--ServerApp.password=",
                   f"--ServerApp.root_dir={self.root}", "--ServerApp.allow_root=True"]
        log_path = self.log_path or (self._home / "jupyterlab.log")
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - held open for the server's lifetime, closed in stop()
        self.process = subprocess.Popen(command, cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode} while starting:\n"
                                   f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer within {self.startup_timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return Path(self.log_path).read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
