"""The attention explorer in a real browser: what a person does, checked by what a person sees and by the kernel.

JupyterLab (this interpreter, 127.0.0.1, random port and token, throw-away settings) serves a copy of
``notebooks/02_attention_explorer.ipynb`` with one cell added at its end that prints the explorer's pixel;
headless Debian Chromium, driven by Playwright for Python, opens it, runs all cells, waits for the kernel to be
idle, then clicks a pixel of the picture with ``page.mouse.click`` and checks that

* the pixel label names the pixel under the click (row/col from the click position and the picture's box, as
  the view computes them), and the kernel's ``explorer.selected_pixel`` is that pixel (the added cell, run again);
* the attention maps changed on screen (the panel canvases' pixels before and after differ),
* the arrow keys move the query by one feature pixel (keyboard use).

Screenshots are kept under the test's tmp folder (the path is printed). Without Chromium or Playwright the test
is skipped, unless ``ISANET_REQUIRE_BROWSER=1`` (CI), where a missing browser is a failure.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
from conftest import LABEL
from lab_session import JupyterLab

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "02_attention_explorer.ipynb"
RUN_TIMEOUT_S = 180


def _parse(text: str) -> dict:
    match = LABEL.search(text)
    assert match, f"pixel label not understood: {text!r}"
    row, col, height, width, frow, fcol, fh, fw = map(int, match.groups())
    return dict(pixel=(row, col), image_size=(height, width), feature=(frow, fcol), feature_size=(fh, fw))


def _panels(page) -> list[int]:
    """A checksum of each map panel's pixels (the canvases the view draws)."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('canvas.isanet-panel'), canvas => {
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let sum = 0;
        for (let i = 0; i < data.length; i += 7) sum = (sum * 31 + data[i]) % 1000000007;
        return sum;
    })""")


def _wait_for(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def test_click_a_pixel_updates_the_attention_view(chromium, tmp_path: Path) -> None:
    served = tmp_path / "lab"
    served.mkdir()
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # a copy: the test must never write into the repository's
    notebook.cells.append(nbformat.v4.new_code_cell("print('selected', explorer.selected_pixel)"))
    nbformat.write(notebook, served / NOTEBOOK.name)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nbrowser test artefacts (screenshots, JupyterLab log): {tmp_path}")

    with JupyterLab(served, log_path=tmp_path / "jupyterlab.log") as lab:
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            _drive(page, lab, shots)
        except BaseException:
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
            print(f"JupyterLab log tail:\n{lab.log_tail()}")
            raise


def _drive(page, lab: JupyterLab, shots: Path) -> None:
    page.goto(lab.url(f"lab/tree/{NOTEBOOK.name}"))
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    page.wait_for_function(  # the kernel is up: the status bar reads "Python 3 (ipykernel) | Idle"
        "() => (document.querySelector('#jp-main-statusbar') || {innerText: ''}).innerText.includes('Idle')",
        timeout=90_000)

    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    label = page.locator(".isanet-attention-explorer .isanet-pixel-label").first

    def finished() -> bool:
        prompts = page.locator(".jp-InputPrompt").all_inner_texts()
        return bool(prompts) and not any("*" in text for text in prompts) and LABEL.search(label.inner_text() or "")
    _wait_for(finished, RUN_TIMEOUT_S, "Run All to finish")
    tracebacks = [text for text in page.locator(".jp-RenderedText").all_inner_texts() if "Traceback" in text]
    assert not tracebacks, f"a cell failed: {tracebacks[0][:2000]}"

    picker = page.locator(".isanet-attention-explorer canvas.isanet-picker").first
    picker.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "01_after_run_all.png"), full_page=True)
    state = _parse(label.inner_text())
    height, width = state["image_size"]
    before = _panels(page)

    # A pixel far from the current one: bottom-right quarter if we are in the top-left half, else top-left.
    target = (height * 3 // 4, width * 4 // 5) if state["pixel"][1] < width // 2 else (height // 5, width // 6)
    box = picker.bounding_box()
    x = box["x"] + (target[1] + 0.5) * box["width"] / width
    y = box["y"] + (target[0] + 0.5) * box["height"] / height
    page.mouse.click(x, y)
    clicked = _wait_for(lambda: (s := _parse(label.inner_text()))["pixel"] != state["pixel"] and s, 30,
                        "the pixel label to follow the click")
    assert abs(clicked["pixel"][0] - target[0]) <= 1 and abs(clicked["pixel"][1] - target[1]) <= 1, (
        f"clicked at page ({x:.1f}, {y:.1f}) = image pixel {target}, label says {clicked['pixel']}")
    page.screenshot(path=str(shots / "02_after_click.png"), full_page=True)
    after = _wait_for(lambda: (drawn := _panels(page)) != before and drawn, 30, "the attention maps to be redrawn")
    assert len(after) == 4 and all(a != b for a, b in zip(before, after)), (before, after)

    # the kernel knows the clicked pixel: run the added last cell again
    last = page.locator(".jp-Notebook .jp-Cell").filter(has_text="print('selected'").last
    last.scroll_into_view_if_needed()
    last.locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    printed = _wait_for(lambda: next((text for text in last.locator(".jp-OutputArea-output").all_inner_texts()
                                      if text.startswith("selected") and str(tuple(clicked["pixel"])) in text), None),
                        30, "the kernel to print the clicked pixel "
                        f"(last cell's output: {last.locator('.jp-OutputArea-output').all_inner_texts()})")
    assert printed.strip() == f"selected {tuple(clicked['pixel'])}", printed

    # Keyboard: hover the picture (the view focuses it) and move the query one feature row down / up.
    picker.scroll_into_view_if_needed()
    box = picker.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    state = _parse(label.inner_text())
    key, step = ("ArrowDown", 1) if state["feature"][0] < state["feature_size"][0] - 1 else ("ArrowUp", -1)
    page.keyboard.press(key)
    moved = _wait_for(lambda: (s := _parse(label.inner_text()))["feature"] != state["feature"] and s, 30,
                      f"{key} to move the query")
    assert moved["feature"] == (state["feature"][0] + step, state["feature"][1]), moved
    page.screenshot(path=str(shots / "03_after_arrow_key.png"), full_page=True)
    print(f"clicked image pixel {target}: label {clicked['pixel']}; {key} -> feature {moved['feature']}")
