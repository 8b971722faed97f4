"""The partition and pattern pages (notebooks 01 and 06 on the site) in a real browser, opened from disk: one click
each, as a person clicks (``page.mouse.click``), moves the pixel, changes the picture (canvas read back) and gives
what the package computes (the two-hop path of :func:`two_hop_path`; the reached pixels of
:func:`isanet.analysis.reach.reach`). Skipped without Chromium or Playwright unless ``ISANET_REQUIRE_BROWSER=1``."""

from __future__ import annotations

from pathlib import Path

import pytest

from isanet.analysis.reach import reach
from isanet.models.isa import Partition
from isanet.notebook.explorer_pages import save_partition_page, save_pattern_page
from isanet.notebook.partition_plots import two_hop_path


def _open(chromium, path: Path):
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.resolve().as_uri())
    page.wait_for_function("() => window.isanet && window.isanet.ready", timeout=30_000)
    assert not errors, errors
    return page, errors


def _click_cell(page, selector: str, row: int, col: int, rows: int, cols: int) -> None:
    box = page.locator(selector).bounding_box()
    before = page.evaluate("() => window.isanet.redraws")
    page.mouse.click(box["x"] + (col + 0.5) * box["width"] / cols, box["y"] + (row + 0.5) * box["height"] / rows)
    page.wait_for_function(f"() => window.isanet.redraws > {before}")


@pytest.mark.usefixtures("one_thread")
def test_partition_page_click_moves_the_source(chromium, tmp_path: Path) -> None:
    save_partition_page(tmp_path / "p.html", height=13, width=18, down_factor=4, source=(0, 0), target=(12, 17))
    page, errors = _open(chromium, tmp_path / "p.html")
    picture = page.evaluate("() => document.querySelector('canvas.isanet-map').toDataURL()")
    p = Partition(13, 18, 4, 4)
    _click_cell(page, "canvas.isanet-map", 5 + p.pad_top, 7 + p.pad_left, p.padded_h, p.padded_w)  # padded cells
    state = page.evaluate("() => window.isanet.state")
    assert state["source"] == [5, 7] and state["target"] == [12, 17]
    assert tuple(page.evaluate("() => window.isanet.via")) == two_hop_path(p, (5, 7), (12, 17))[1]
    assert "source (5, 7) → via" in page.locator(".isanet-path").inner_text()
    assert page.evaluate("() => document.querySelector('canvas.isanet-map').toDataURL()") != picture
    page.evaluate("() => window.isanet.set(9, 10, 3)")
    q = Partition(9, 10, 3, 3)
    assert page.evaluate("() => [window.isanet.partition.padded_h, window.isanet.partition.pad_left]") == [
        q.padded_h, q.pad_left]
    assert not errors, errors


@pytest.mark.usefixtures("one_thread")
def test_pattern_page_click_moves_the_query(chromium, tmp_path: Path) -> None:
    height, width = 18, 26
    save_pattern_page(tmp_path / "r.html", height=height, width=width, pixel=(5, 9), size=4, sizes=(3, 4))
    page, errors = _open(chromium, tmp_path / "r.html")
    selector = "canvas.isanet-reach[data-method=window][data-layers='1']"
    picture = page.evaluate(f"() => document.querySelector(\"{selector}\").toDataURL()")
    _click_cell(page, selector, 0, 0, height, width)
    assert page.evaluate("() => window.isanet.state.pixel") == [0, 0]
    counts = page.evaluate("() => window.isanet.counts")
    for method, (one, two) in counts.items():
        assert [one, two] == [int(reach(method, height, width, 4, layers)[0].sum()) for layers in (1, 2)], method
    assert page.evaluate(f"() => document.querySelector(\"{selector}\").toDataURL()") != picture
    assert not errors, errors
