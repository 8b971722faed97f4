"""The static site (``python3 kit.py site``) in a real browser, from disk: the index links the notebook pages,
notebook 02's page shows its outputs and embeds the standalone explorer, and that explorer answers a click.

CI builds the whole site first and points ``ISANET_SITE_DIR`` at it; without it the test builds notebook 02's
page alone into its tmp folder (about half a minute). Skipped without Chromium or Playwright, unless
``ISANET_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import os
from pathlib import Path

from conftest import LABEL

from isanet.notebook.site import EMBEDS, EXPLORER_NOTEBOOK, EXPLORER_PAGE, NOTATION_PAGE, build_site


def _site(tmp_path: Path) -> Path:
    built = os.environ.get("ISANET_SITE_DIR")
    if built:
        site = Path(built)
        assert (site / "index.html").is_file(), f"ISANET_SITE_DIR={built} holds no index.html (run kit.py site)"
        return site
    site = tmp_path / "site"
    assert build_site(site, [EXPLORER_NOTEBOOK], quick=True) == 0
    return site


def _settled_box(page, locator, quiet_ms: int = 300, timeout_ms: int = 15_000) -> dict:
    """The element's box once MathJax has finished typesetting and the box has not moved for ``quiet_ms``.

    MathJax 2 typesets in chunks and swaps web fonts in afterwards, so the layout above the explorer can still
    shift by a fraction of a pixel after the first formula appears; one fixed wait was not always enough."""
    page.evaluate("() => new Promise(done => window.MathJax ? MathJax.Hub.Queue(() => done(true)) : done(true))")
    box, waited = locator.bounding_box(), 0
    while waited < timeout_ms:
        page.wait_for_timeout(quiet_ms)
        waited += quiet_ms
        now = locator.bounding_box()
        if now == box:
            return box
        box = now
    raise AssertionError(f"the explorer's picker still moves after {timeout_ms} ms (last box {box})")


def test_site_index_and_notebook_02_with_a_working_explorer(chromium, tmp_path: Path) -> None:
    site = _site(tmp_path)
    standalone = {embed.page for embed in EMBEDS.values()}
    pages = sorted(path.name for path in site.glob("[0-9][0-9]_*.html") if path.name not in standalone)
    assert f"{EXPLORER_NOTEBOOK}.html" in pages and (site / EXPLORER_PAGE).is_file()
    if (site / NOTATION_PAGE).is_file():  # the notation card is listed with the notebooks
        pages = sorted([*pages, NOTATION_PAGE])

    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    # external scripts of the page template (MathJax) cannot load here: do not wait for them
    page.goto((site / "index.html").resolve().as_uri(), wait_until="domcontentloaded")
    links = page.locator("ol.isanet-pages a")
    assert sorted(link.get_attribute("href") for link in links.all()) == pages
    page.locator(f'ol.isanet-pages a[href="{EXPLORER_NOTEBOOK}.html"]').click()
    page.wait_for_url(f"**/{EXPLORER_NOTEBOOK}.html", wait_until="domcontentloaded")
    text = page.locator("body").inner_text()
    assert "Attention explorer" in text and "wrote " in text, "the executed outputs are on the page"
    assert "interactive widget" in text, "the kernel-only widget is replaced by a note"
    assert "Traceback" not in text
    # the site's own MathJax copy typesets the formulas, with no network
    page.wait_for_function("() => document.querySelectorAll('.MathJax, .MathJax_Display').length > 0",
                           timeout=60_000, polling=200)

    # the outputs' pictures above the iframe take their size when decoded: wait, or the layout shifts
    page.wait_for_function("() => Array.from(document.images).every(image => image.complete)",
                           timeout=30_000, polling=100)
    frame_element = page.locator("iframe.isanet-explorer-frame")
    frame_element.scroll_into_view_if_needed()
    frame = next(f for f in page.frames if f.url.endswith(EXPLORER_PAGE))
    # requestAnimationFrame polling stalls in a frame out of view: poll by time
    frame.wait_for_function("() => window.isanet && window.isanet.ready", timeout=30_000, polling=100)
    before = frame.evaluate("() => document.getElementById('label').textContent")
    height, width = map(int, LABEL.search(before).groups()[2:4])
    picker = page.frame_locator("iframe.isanet-explorer-frame").locator("#picker")
    box = _settled_box(page, picker)
    target = (height // 5, width // 7)
    page.mouse.click(box["x"] + (target[1] + 0.5) * box["width"] / width,
                     box["y"] + (target[0] + 0.5) * box["height"] / height)
    frame.wait_for_function(f"() => document.getElementById('label').textContent !== {before!r}",
                            timeout=10_000, polling=50)
    after = tuple(map(int, LABEL.search(frame.evaluate(
        "() => document.getElementById('label').textContent")).groups()[:2]))
    # Chromium hands the handler whole CSS pixels: at scale 1 a click may land on the neighbour
    y, x, box_height, box_width = frame.evaluate("window.isanet.lastClick")
    assert after == (int(y / box_height * height), int(x / box_width * width))
    assert abs(after[0] - target[0]) <= 1 and abs(after[1] - target[1]) <= 1, (after, target)
    page.screenshot(path=str(tmp_path / "site_02_after_click.png"), full_page=True)
