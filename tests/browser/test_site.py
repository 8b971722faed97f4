"""The static site (``python3 kit.py site``) in a real browser, from disk: the index links the notebook pages,
notebook 02's page shows its outputs and embeds the standalone explorer, and that explorer answers a click; every
page typesets its formulas with no error, fetches nothing from the network and names no folder of the machine.

CI builds the whole site first and points ``ISANET_SITE_DIR`` at it; without it the test builds notebook 02's
page alone into its tmp folder (about half a minute). Skipped without Chromium or Playwright, unless
``ISANET_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import LABEL

from isanet.notebook.serve import serve_in_thread
from isanet.notebook.site import (
    EMBEDS,
    EXPLORER_NOTEBOOK,
    EXPLORER_PAGE,
    LIVE_PAGE,
    NOTATION_PAGE,
    build_site,
    local_prefixes,
)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site CI built, or notebook 02's page alone, built once for this module's tests."""
    built = os.environ.get("ISANET_SITE_DIR")
    if built:
        folder = Path(built)
        assert (folder / "index.html").is_file(), f"ISANET_SITE_DIR={built} holds no index.html (run kit.py site)"
        return folder
    folder = tmp_path_factory.mktemp("site") / "site"
    assert build_site(folder, [EXPLORER_NOTEBOOK], quick=True) == 0
    return folder


def _settled_box(page, locator, quiet_ms: int = 300, timeout_ms: int = 15_000) -> dict:
    """The element's box once MathJax has finished typesetting and the box has not moved for ``quiet_ms``.

    Typesetting and the pictures' decoding change the layout above the explorer after the page has loaded, so the
    box can still shift by a fraction of a pixel; one fixed wait was not always enough."""
    _typeset(page)
    box, waited = locator.bounding_box(), 0
    while waited < timeout_ms:
        page.wait_for_timeout(quiet_ms)
        waited += quiet_ms
        now = locator.bounding_box()
        if now == box:
            return box
        box = now
    raise AssertionError(f"the explorer's picker still moves after {timeout_ms} ms (last box {box})")


def _typeset(page) -> None:
    """Wait until MathJax 3 has typeset the page (at once when the page loads none)."""
    page.wait_for_function("() => !document.querySelector('script[src*=mathjax]') || (window.MathJax && "
                           "MathJax.startup && MathJax.startup.promise)", timeout=60_000, polling=100)
    page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise.then(() => true) : true")


def test_every_page_typesets_its_formulas_fetches_nothing_and_names_no_local_folder(chromium, site: Path) -> None:
    local = [folder for folder in local_prefixes() if folder.strip("/")]
    pages = sorted(site.glob("*.html"))
    assert (site / "mathjax" / "tex-svg-full.js").is_file(), "no copy of MathJax 3 in the site (npm ci --prefix web)"
    page = chromium.new_page()
    remote: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(("file:", "data:", "blob:", "about:"))
            else remote.append(request.url))
    report = {}
    for path in pages:
        page.goto(path.resolve().as_uri(), wait_until="load")
        _typeset(page)
        text = page.locator("body").inner_text()
        report[path.name] = page.evaluate("""() => ({
            formulas: document.querySelectorAll('mjx-container').length,
            errors: document.querySelectorAll('[data-mml-node="merror"], mjx-merror').length})""")
        report[path.name].update(
            processing_errors=text.count("Math Processing Error"), warnings=text.count("Warning:"),
            local_paths=[folder for folder in local if folder in text])
    wrong = {name: found for name, found in report.items()
             if found["errors"] or found["processing_errors"] or found["warnings"] or found["local_paths"]}
    assert not wrong, wrong
    assert not remote, remote
    with_math = [name for name, found in report.items() if found["formulas"]]
    assert f"{EXPLORER_NOTEBOOK}.html" in with_math and len(with_math) >= len(pages) // 2, report


def test_served_the_site_runs_the_teaching_model_live_in_notebook_02s_page(chromium, site: Path) -> None:
    assert (site / LIVE_PAGE).is_file(), "notebook 02's page embeds the live page"
    server, base = serve_in_thread(site)
    try:
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}{EXPLORER_NOTEBOOK}.html")
        frame_element = page.locator(f'iframe.isanet-explorer-frame[src="{LIVE_PAGE}"]')
        frame_element.scroll_into_view_if_needed()
        frame = next(f for f in page.frames if f.url.endswith(LIVE_PAGE))
        frame.wait_for_function("() => window.isanetLive && window.isanetLive.ready", timeout=30_000)
        assert frame.evaluate("() => window.isanetLive.ready") is True, frame.locator("#mode").inner_text()
        assert frame.evaluate("() => window.isanetLive.backend").startswith("wasm")
        assert frame.evaluate("() => window.isanetLive.runs") >= 1
    finally:
        server.shutdown()
        server.server_close()


def test_site_index_and_notebook_02_with_a_working_explorer(chromium, site: Path, tmp_path: Path) -> None:
    standalone = {embed.page for embeds in EMBEDS.values() for embed in embeds}
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
    _typeset(page)
    assert page.locator("mjx-container").count() > 0

    # the outputs' pictures above the iframe take their size when decoded: wait, or the layout shifts
    page.wait_for_function("() => Array.from(document.images).every(image => image.complete)",
                           timeout=30_000, polling=100)
    frame_element = page.locator(f'iframe.isanet-explorer-frame[src="{EXPLORER_PAGE}"]')
    frame_element.scroll_into_view_if_needed()
    frame = next(f for f in page.frames if f.url.endswith(EXPLORER_PAGE))
    # requestAnimationFrame polling stalls in a frame out of view: poll by time
    frame.wait_for_function("() => window.isanet && window.isanet.ready", timeout=30_000, polling=100)
    before = frame.evaluate("() => document.querySelector('.isanet-pixel-label').textContent")
    height, width = map(int, LABEL.search(before).groups()[2:4])
    picker = page.frame_locator(f'iframe.isanet-explorer-frame[src="{EXPLORER_PAGE}"]').locator("canvas.isanet-picker")
    box = _settled_box(page, picker)
    target = (height // 5, width // 7)
    page.mouse.click(box["x"] + (target[1] + 0.5) * box["width"] / width,
                     box["y"] + (target[0] + 0.5) * box["height"] / height)
    frame.wait_for_function(f"() => document.querySelector('.isanet-pixel-label').textContent !== {before!r}",
                            timeout=10_000, polling=50)
    after = tuple(map(int, LABEL.search(frame.evaluate(
        "() => document.querySelector('.isanet-pixel-label').textContent")).groups()[:2]))
    # Chromium hands the handler whole CSS pixels: at scale 1 a click may land on the neighbour
    y, x, box_height, box_width = frame.evaluate("window.isanet.lastClick")
    assert after == (int(y / box_height * height), int(x / box_width * width))
    assert abs(after[0] - target[0]) <= 1 and abs(after[1] - target[1]) <= 1, (after, target)
    page.screenshot(path=str(tmp_path / "site_02_after_click.png"), full_page=True)
