"""The live page's time from a drag to the redraw, in headless Chromium on this machine.

Writes the live page of the shipped teaching model (:func:`isanet.notebook.live_page.save_teaching_live_page`),
serves it from 127.0.0.1 (:mod:`isanet.notebook.serve`, so onnxruntime-web may use wasm threads) and drags the
beacon down and up again, one pixel row per step, as a person would (Playwright's mouse, the page's own pointer
handlers). For each step that moved the beacon the page records ``editedAt`` (the pointer event moved it) and
``drawnAt`` (the model has run on the edited picture and every panel is redrawn); the script prints the median and
the range of their difference, and of the model run alone (``lastRunMs``), over ``--steps`` drags, with the
machine. The first run (session warm-up) is left out.

    .venv/bin/python benchmarks/live_page_latency.py --steps 40
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))


def machine() -> str:
    """The CPU model and core count, and Chromium's version."""
    import os

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU") if Path("/proc/cpuinfo").is_file() else "unknown CPU"
    from lab_session import find_chromium

    version = subprocess.run([find_chromium(), "--version"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {os.cpu_count()} cores, {version}"


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.1f} ms (min {min(values):.1f}, max {max(values):.1f}, n {len(values)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="drag steps measured (default: 40)")
    args = parser.parse_args(argv)
    from lab_session import CHROMIUM_ARGS, find_chromium
    from playwright.sync_api import sync_playwright

    from isanet.data.context import beacon_box
    from isanet.notebook.live_page import save_teaching_live_page, teaching_pictures
    from isanet.notebook.serve import serve_in_thread

    with tempfile.TemporaryDirectory(prefix="isanet-live-") as folder:
        save_teaching_live_page(Path(folder) / "live.html")
        server, base = serve_in_thread(folder)
        edit, run = [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1500, "height": 1200})
            page.goto(f"{base}live.html")
            if page.evaluate("() => window.isanetLive.ready") is not True:
                sys.exit(f"the page did not start its model: {page.locator('#mode').inner_text()}")
            backend = page.evaluate("() => window.isanetLive.backend")
            box = page.locator("#picture").bounding_box()
            top, left, height, width = beacon_box(teaching_pictures(1)[0].label)
            x = box["x"] + (left + width / 2) * box["width"] / 160
            y = box["y"] + (top + height / 2) * box["height"] / 160
            page.mouse.move(x, y)
            page.mouse.down()
            row, step = 0, 1
            while len(edit) < args.steps:
                if not -12 <= row + step <= 12:  # down and up again near the beacon's corner
                    step = -step
                row += step
                runs = page.evaluate("() => window.isanetLive.runs")
                page.mouse.move(x, y + row * box["height"] / 160)
                page.wait_for_function(f"() => window.isanetLive.runs > {runs} && !window.isanetLive.busy",
                                       timeout=30_000)
                times = page.evaluate("() => [window.isanetLive.drawnAt - window.isanetLive.editedAt, "
                                      "window.isanetLive.lastRunMs]")
                edit.append(times[0])
                run.append(times[1])
            page.mouse.up()
            browser.close()
        server.shutdown()
        server.server_close()
    print(f"drag -> redraw: {spread(edit[1:])}")
    print(f"model run alone: {spread(run[1:])}")
    print(f"backend: {backend}; machine: {machine()}; SYNTHETIC context picture, teaching model (160 x 160)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
