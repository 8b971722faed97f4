"""The partition and pattern explorers (anywidgets) in JupyterLab with Chromium: each view draws, a slider and a
click set the model's traits that the kernel reads, and a trait set in the kernel redraws the view.

JupyterLab (this interpreter, 127.0.0.1, throw-away settings) serves a notebook written here: each explorer, a cell
that prints its state, a cell that changes it from Python. Skipped without Chromium or Playwright, unless
``ISANET_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
from lab_session import JupyterLab

from isanet.models.isa import Partition

CELLS = ("from isanet.notebook.partition_explorer import PartitionExplorer\n"
         "explorer = PartitionExplorer(13, 18, 4, source=(0, 0), target=(12, 17))\nexplorer",
         "print('state', explorer.down_factor, explorer.source, explorer.target)",
         "explorer.height = 6",
         "from isanet.notebook.attention_patterns import ReachExplorer\n"
         "patterns = ReachExplorer(8, 10, (1, 1), size=2, methods=('isa', 'window'), max_size=3)\npatterns",
         "print('query', patterns.pixel, patterns.size)",
         "patterns.size = 3")


def _wait_for(predicate, timeout: float, what: str):
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def _run_cell(page, index: int) -> None:
    """Select cell ``index`` and run it (Shift+Enter), then wait for the kernel to be idle again."""
    page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    _wait_for(lambda: not any("*" in text for text in page.locator(".jp-InputPrompt").all_inner_texts()), 60,
              f"cell {index} to run")


def _printed_by(page, index: int, prefix: str) -> str:
    """Run cell ``index`` and return the printed line that starts with ``prefix``."""
    _run_cell(page, index)
    return _wait_for(lambda: next((text.strip() for text in page.locator(".jp-OutputArea-output").all_inner_texts()
                                   if text.startswith(prefix)), None), 30, f"cell {index} to print {prefix!r}")


def test_the_explorer_widgets_sync_both_ways_in_jupyterlab(chromium, tmp_path: Path) -> None:
    served = tmp_path / "lab"
    served.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS],
                                            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                     "language": "python"}}),
                   served / "partition.ipynb")
    with JupyterLab(served, log_path=tmp_path / "jupyterlab.log") as lab:
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            page.goto(lab.url("lab/tree/partition.ipynb"))
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
            page.wait_for_function("() => (document.querySelector('#jp-main-statusbar') || {innerText: ''})"
                                   ".innerText.includes('Idle')", timeout=90_000)
            _run_cell(page, 0)
            canvas = page.locator("canvas.isanet-map")
            canvas.wait_for(timeout=60_000)
            canvas.scroll_into_view_if_needed()
            path = page.locator(".isanet-partition-explorer .isanet-path")
            assert "target (12, 17)" in path.inner_text()

            # the view sets the traits: the down_factor slider, then a click on the map moves the source
            page.locator("input.isanet-factor").evaluate(
                "slider => { slider.value = 5; slider.dispatchEvent(new Event('input')); }")
            p = Partition(13, 18, 5, 5)
            box = canvas.bounding_box()
            page.mouse.click(box["x"] + (7 + p.pad_left + 0.5) * box["width"] / p.padded_w,
                             box["y"] + (5 + p.pad_top + 0.5) * box["height"] / p.padded_h)
            _wait_for(lambda: "source (5, 7)" in path.inner_text(), 30, "the click to move the source")
            assert _printed_by(page, 1, "state") == "state 5 [5, 7] [12, 17]"

            # the kernel sets a trait: the view redraws with the target clamped into the smaller map
            _run_cell(page, 2)
            _wait_for(lambda: "target (5, 17)" in path.inner_text(), 30, "the view to follow the kernel")
            assert page.locator(".isanet-height-value").inner_text() == "6"

            # the pattern explorer: a click on a panel moves the query in the kernel; a size set there redraws
            _run_cell(page, 3)
            panel = page.locator("canvas.isanet-reach[data-method=window][data-layers='1']")
            panel.wait_for(timeout=60_000)
            panel.scroll_into_view_if_needed()
            box = panel.bounding_box()
            page.mouse.click(box["x"] + 6.5 * box["width"] / 10, box["y"] + 4.5 * box["height"] / 8)
            query = page.locator(".isanet-pattern-explorer .isanet-query")
            _wait_for(lambda: "(4, 6)" in query.inner_text(), 30, "the click to move the query")
            assert _printed_by(page, 4, "query") == "query [4, 6] 2"
            _run_cell(page, 5)
            _wait_for(lambda: "size 3" in query.inner_text(), 30, "the view to follow the kernel's size")
            assert not [text for text in page.locator(".jp-RenderedText").all_inner_texts() if "Traceback" in text]
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(f"JupyterLab log tail:\n{lab.log_tail()}")
            raise
