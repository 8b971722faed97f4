"""What every real-browser test needs: the system Chromium under Playwright, or a clear skip (a failure in CI,
where ``ISANET_REQUIRE_BROWSER=1``), and the explorer label every view prints."""

from __future__ import annotations

import os
import re

import pytest
from lab_session import CHROMIUM_ARGS, find_chromium

#: The pixel label of the notebook explorer and of the standalone page (the tests read the clicked pixel from it).
LABEL = re.compile(r"pixel \((\d+), (\d+)\) in the (\d+)×(\d+) image → feature \((\d+), (\d+)\) of (\d+)×(\d+)")


def unavailable(reason: str) -> None:
    """Skip, or fail when CI asked for the browser tests to run."""
    if os.environ.get("ISANET_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ISANET_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture()
def chromium():
    """A headless system Chromium driven by Playwright, closed after the test."""
    executable = find_chromium()
    if executable is None:
        unavailable("no system Chromium (install it with `apt-get install -y chromium`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
