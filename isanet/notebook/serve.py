"""Serve a folder (the site, a live page's folder) on 127.0.0.1, with the headers the live page needs.

Browsers load neither ES modules nor WebAssembly from ``file://``, so the live page (:mod:`isanet.notebook.live_page`)
runs its model only when served over http. The two cross-origin isolation headers (``Cross-Origin-Opener-Policy:
same-origin``, ``Cross-Origin-Embedder-Policy: require-corp``) let onnxruntime-web run its wasm on several threads
(``SharedArrayBuffer``); without them it runs on one. Everything the kit's pages load comes from the same folder,
so the isolation blocks nothing they need. ``python3 kit.py site --serve`` uses it; the browser tests start it on
a free port in a thread.
"""

from __future__ import annotations

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


class IsolatedHandler(SimpleHTTPRequestHandler):
    """Static files with :data:`ISOLATION_HEADERS`, wasm as ``application/wasm`` and ``.mjs`` as JavaScript (both
    needed by the runtime's streaming compile and module import), and no request log on stderr."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm",
                      ".mjs": "text/javascript"}

    def end_headers(self) -> None:
        for name, value in ISOLATION_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        pass


def make_server(folder: str | os.PathLike, port: int = 0) -> ThreadingHTTPServer:
    """A server of ``folder`` on :data:`HOST` and ``port`` (0: a free one; ``server.server_address[1]`` says
    which), not yet serving: call ``serve_forever`` (or :func:`serve_in_thread`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder to serve")
    return ThreadingHTTPServer((HOST, port), functools.partial(IsolatedHandler, directory=str(folder)))


def serve_in_thread(folder: str | os.PathLike) -> tuple[ThreadingHTTPServer, str]:
    """:func:`make_server` on a free port, serving from a daemon thread; returns it and its base URL. Stop it with
    ``server.shutdown(); server.server_close()``."""
    server = make_server(folder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{HOST}:{server.server_address[1]}/"
