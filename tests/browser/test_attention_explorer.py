"""The attention explorer in a real browser: what a person does, checked by what a person sees.

JupyterLab (this interpreter, 127.0.0.1, random port and token, throw-away settings) serves a copy of
``notebooks/02_attention_explorer.ipynb``; headless Debian Chromium, driven by Playwright for Python, opens it,
runs all cells, waits for the kernel to be idle, then clicks a pixel of the picture with ``page.mouse.click``
and checks that

* the pixel label names the pixel under the click (row/col computed from the click position, the picture's
  bounding box and its natural size, as ipyevents computes them), and
* the attention maps changed on screen (screenshots of the maps before and after differ),
* the arrow keys move the query by one feature pixel (keyboard use).

Screenshots are kept under the test's tmp folder (the path is printed). Without Chromium or Playwright the test
is skipped, unless ``ISANET_REQUIRE_BROWSER=1`` (CI), where a missing browser is a failure.
"""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

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


def _changed_fraction(before: bytes, after: bytes) -> float:
    """Share of pixels that differ between two screenshots (of the same element)."""
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(before)).convert("RGB")).astype(int)
    b = np.asarray(Image.open(io.BytesIO(after)).convert("RGB")).astype(int)
    if a.shape != b.shape:
        return 1.0
    return float((np.abs(a - b).sum(axis=2) > 30).mean())


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
    shutil.copy(NOTEBOOK, served / NOTEBOOK.name)  # the test must never write outputs into the repository's copy
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

    def finished() -> bool:
        prompts = page.locator(".jp-InputPrompt").all_inner_texts()
        return bool(prompts) and not any("*" in text for text in prompts) and page.locator(
            ".isanet-pixel-label").count() > 0
    _wait_for(finished, RUN_TIMEOUT_S, "Run All to finish")
    tracebacks = [text for text in page.locator(".jp-RenderedText").all_inner_texts() if "Traceback" in text]
    assert not tracebacks, f"a cell failed: {tracebacks[0][:2000]}"

    picker = page.locator("img.isanet-picker")
    maps = page.locator("img.isanet-maps")
    label = page.locator(".isanet-pixel-label")
    picker.scroll_into_view_if_needed()
    _wait_for(lambda: picker.evaluate("e => e.complete && e.naturalWidth > 0"), 30, "the picture to load")
    page.screenshot(path=str(shots / "01_after_run_all.png"), full_page=True)

    state = _parse(label.inner_text())
    height, width = state["image_size"]
    natural_width, natural_height = picker.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    maps.scroll_into_view_if_needed()
    maps_before = maps.screenshot(path=str(shots / "02_maps_before.png"))

    # A pixel far from the current one: bottom-right quarter if we are in the top-left half, else top-left.
    target = (height * 3 // 4, width * 4 // 5) if state["pixel"][1] < width // 2 else (height // 5, width // 6)
    picker.scroll_into_view_if_needed()
    box = picker.bounding_box()
    x = round(box["x"] + (target[1] + 0.5) * box["width"] / width)
    y = round(box["y"] + (target[0] + 0.5) * box["height"] / height)
    # What ipyevents reports for an <img>: the position in the PNG's own pixels, rounded; the widget divides
    # by its scale (natural size / image size) and floors.
    data_x = round((x - box["x"]) / box["width"] * natural_width)
    data_y = round((y - box["y"]) / box["height"] * natural_height)
    expected = (min(int(data_y * height / natural_height), height - 1),
                min(int(data_x * width / natural_width), width - 1))

    page.mouse.click(x, y)
    clicked = _wait_for(lambda: (s := _parse(label.inner_text()))["pixel"] != state["pixel"] and s, 30,
                        "the pixel label to follow the click")
    assert abs(clicked["pixel"][0] - expected[0]) <= 1 and abs(clicked["pixel"][1] - expected[1]) <= 1, (
        f"clicked at page ({x}, {y}) = image pixel {expected}, label says {clicked['pixel']}")
    assert clicked["pixel"] == expected, f"label {clicked['pixel']} != expected {expected} (off by rounding?)"
    page.screenshot(path=str(shots / "03_after_click.png"), full_page=True)

    maps.scroll_into_view_if_needed()
    maps_after = _wait_for(lambda: (shot := maps.screenshot()) != maps_before and shot, 30,
                           "the attention maps to be redrawn")
    (shots / "04_maps_after.png").write_bytes(maps_after)
    changed = _changed_fraction(maps_before, maps_after)
    assert changed > 0.01, f"only {changed:.2%} of the maps' pixels changed after the click"

    # Keyboard: hover the picture (ipyevents focuses it) and move the query one feature row down / up.
    picker.scroll_into_view_if_needed()
    box = picker.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    key, step = ("ArrowDown", 1) if clicked["feature"][0] < clicked["feature_size"][0] - 1 else ("ArrowUp", -1)
    page.keyboard.press(key)
    moved = _wait_for(lambda: (s := _parse(label.inner_text()))["feature"] != clicked["feature"] and s, 30,
                      f"{key} to move the query")
    assert moved["feature"] == (clicked["feature"][0] + step, clicked["feature"][1]), moved
    page.screenshot(path=str(shots / "05_after_arrow_key.png"), full_page=True)
    print(f"clicked image pixel {expected}: label {clicked['pixel']} feature {clicked['feature']}; maps changed "
          f"{changed:.1%}; {key} -> feature {moved['feature']}")
