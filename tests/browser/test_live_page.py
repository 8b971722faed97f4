"""The live teaching page (:mod:`isanet.notebook.live_page`) in a real browser: served from 127.0.0.1 it runs the
teaching model in onnxruntime-web (wasm) and agrees with PyTorch; opened from ``file://`` it shows the precomputed
view and says so.

* ``isanetLive.predict`` on a context picture whose beacon is made red, then green, then blue (the kit's own
  :func:`~isanet.data.context.recolour_beacon`) labels the objects as that team; its labels equal the PyTorch
  graph's on at least 99.5 % of the pixels and both steps' weights are within 1e-4;
* a click on the picture chooses the query pixel, and the maps the page draws for it (``isanetLive.maps``) equal
  :func:`isanet.analysis.probe.capture`'s long-range, short-range and composed maps within 1e-4;
* dragging the beacon runs the model again (the page's own pointer handlers).

Skipped without Chromium, Playwright or the npm copy of onnxruntime-web, unless ``ISANET_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch
from conftest import unavailable

from isanet.analysis.probe import capture
from isanet.data.context import TEAM_CLASSES, beacon_box, recolour_beacon
from isanet.io.checkpoint import load_model
from isanet.io.live_export import LiveModel
from isanet.notebook.live_page import Picture, live_outputs, runtime_source, save_live_page
from isanet.notebook.serve import serve_in_thread
from isanet.notebook.teaching import SHIPPED_CHECKPOINT, teaching_samples, teaching_test_settings, teaching_transform

PICTURE = 2  # notebook 02's picture (green team)
PREDICT = """async ([b64, width, height]) => {
  const rgba = Uint8ClampedArray.from(atob(b64), c => c.charCodeAt(0));
  const out = await window.isanetLive.predict(rgba, width, height);
  return {labels: Array.from(out.labels), longRange: Array.from(out.longRange), shortRange: Array.from(out.shortRange)};
}"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The live page of the shipped teaching model on four validation pictures, its model and pictures."""
    if runtime_source() is None:
        unavailable("no npm copy of onnxruntime-web (run `npm ci --prefix web`)")
    torch.set_num_threads(1)
    model = load_model(SHIPPED_CHECKPOINT).eval()
    settings = teaching_test_settings()
    pictures = [Picture(f"validation picture {index}", sample["image"], sample["label"])
                for index, sample in enumerate(teaching_samples()[:4])]
    pictures.insert(0, pictures.pop(PICTURE))  # the page opens on the first
    folder = tmp_path_factory.mktemp("live")
    save_live_page(folder / "live.html", model, pictures, "teaching model", "", mean=settings.mean, std=settings.std)
    return folder, model, pictures, LiveModel(model, settings.mean, settings.std).eval()


def _open(chromium, url: str):
    page = chromium.new_page(viewport={"width": 1500, "height": 1200})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    return page, page.evaluate("() => window.isanetLive.ready"), errors


def _rgba_b64(image: np.ndarray) -> str:
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    return base64.b64encode(rgba.tobytes()).decode("ascii")


def _python_maps(model, image: np.ndarray, row: int, col: int) -> dict[str, np.ndarray]:
    pixel = capture(model, teaching_transform()(image)[None]).pixel(row, col)
    return {"longRange": pixel.long_range.feature, "shortRange": pixel.short_range.feature,
            "composed": pixel.composed.feature}


def test_served_the_model_runs_in_the_page_follows_the_beacon_and_agrees_with_pytorch(chromium, live) -> None:
    folder, model, pictures, graph = live
    server, base = serve_in_thread(folder)
    try:
        page, ready, errors = _open(chromium, f"{base}live.html")
        assert ready is True, page.locator("#mode").inner_text()
        assert page.evaluate("() => window.isanetLive.backend").startswith("wasm")
        picture = pictures[0]
        objects = picture.label >= TEAM_CLASSES[0]
        for team in range(3):
            image, _ = recolour_beacon(picture.image, picture.label, team)
            out = page.evaluate(PREDICT, [_rgba_b64(image), 160, 160])
            labels = np.array(out["labels"], np.int32).reshape(160, 160)
            reference = live_outputs(graph, image)
            assert (labels == reference["labels"]).mean() >= 0.995
            for name, key in (("longRange", "long_range"), ("shortRange", "short_range")):
                values = np.array(out[name], np.float32).reshape(reference[key].shape)
                assert np.abs(values - reference[key]).max() <= 1e-4, name
            on_team = (labels[objects] == TEAM_CLASSES[team]).mean()
            assert on_team >= 0.9, f"beacon team {team}: only {on_team:.0%} of the object pixels on its team"

        # a click picks the query pixel; the maps drawn for it are the probe's
        rows, cols = np.nonzero(objects)
        y, x = int(rows[len(rows) // 2]), int(cols[len(cols) // 2])
        box = page.locator("#picture").bounding_box()
        page.mouse.click(box["x"] + (x + 0.5) * box["width"] / 160, box["y"] + (y + 0.5) * box["height"] / 160)
        page.wait_for_function(f"() => window.isanet.lastClick && window.isanet.lastClick[0] === {y}")
        row, col = page.evaluate("() => window.isanetLive.query")
        assert (row, col) == (y * 20 // 160, x * 20 // 160)
        drawn = page.evaluate("([r, c]) => Object.fromEntries(Object.entries(window.isanetLive.maps(r, c))"
                              ".map(([k, v]) => [k, Array.from(v)]))", [row, col])
        for name, expected in _python_maps(model, picture.image, row, col).items():
            assert np.abs(np.array(drawn[name]).reshape(expected.shape) - expected).max() <= 1e-4, name

        # dragging the beacon moves it and runs the model again
        top, left, height, width = beacon_box(picture.label)
        runs = page.evaluate("() => window.isanetLive.runs")
        start = (box["x"] + (left + width / 2) * box["width"] / 160,
                 box["y"] + (top + height / 2) * box["height"] / 160)
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(start[0], start[1] + 8 * box["height"] / 160, steps=4)
        page.mouse.up()
        page.wait_for_function(f"() => window.isanetLive.runs > {runs} && !window.isanetLive.busy")
        assert page.evaluate("() => window.isanetLive.beacon().top") != top

        # painting object pixels onto the background: the model labels the new object with the beacon's team
        team = TEAM_CLASSES[1]  # the picture's objects are green
        count = f"(labels) => Array.from(labels).filter(value => value === {team}).length"
        before = page.evaluate(f"() => ({count})(window.isanetLive.labels())")
        runs = page.evaluate("() => window.isanetLive.runs")
        page.locator("#paint").click()
        y0, x0 = next((y, x) for y in range(20, 140, 4) for x in range(20, 140, 4)  # a stroke on clear background
                      if not picture.label[y - 8:y + 9, x - 8:x + 15].any())
        page.mouse.move(box["x"] + (x0 + 0.5) * box["width"] / 160, box["y"] + (y0 + 0.5) * box["height"] / 160)
        page.mouse.down()
        page.mouse.move(box["x"] + (x0 + 6.5) * box["width"] / 160, box["y"] + (y0 + 0.5) * box["height"] / 160,
                        steps=3)
        page.mouse.up()
        page.wait_for_function(f"() => window.isanetLive.runs > {runs} && !window.isanetLive.busy")
        after = page.evaluate(f"() => ({count})(window.isanetLive.labels())")
        assert after > before + 50, (before, after)
        assert not errors, errors
    finally:
        server.shutdown()
        server.server_close()


def test_from_file_the_page_shows_the_precomputed_view_and_says_how_to_get_the_live_one(chromium, live) -> None:
    folder, model, pictures, _ = live
    page, ready, errors = _open(chromium, (folder / "live.html").as_uri())
    assert ready is False and page.evaluate("() => window.isanetLive.backend") == "precomputed"
    mode = page.locator("#mode").inner_text()
    assert "Precomputed view" in mode and "kit.py site --serve" in mode
    drawn = page.evaluate("() => Object.fromEntries(Object.entries(window.isanetLive.maps(10, 10))"
                          ".map(([k, v]) => [k, Array.from(v)]))")
    for name, expected in _python_maps(model, pictures[0].image, 10, 10).items():
        assert np.abs(np.array(drawn[name]).reshape(expected.shape) - expected).max() <= 1e-4, name
    assert not errors, errors


def test_written_without_the_runtime_the_served_page_says_so_and_shows_the_precomputed_view(chromium, live,
                                                                                           tmp_path, monkeypatch):
    from isanet.notebook import live_page

    _, model, pictures, _ = live
    settings = teaching_test_settings()
    monkeypatch.setattr(live_page, "runtime_source", lambda: None)  # no `npm ci --prefix web` before the build
    folder = save_live_page(tmp_path / "bare.html", model, pictures[:1], "teaching model", "", mean=settings.mean,
                            std=settings.std)
    assert not (folder / "ort").exists() and (folder / "model.onnx").is_file()
    server, base = serve_in_thread(tmp_path)
    try:
        page, ready, errors = _open(chromium, f"{base}bare.html")
        assert ready is False and page.evaluate("() => window.isanetLive.backend") == "precomputed"
        assert "written without onnxruntime-web" in page.locator("#mode").inner_text()
        assert not errors, errors
    finally:
        server.shutdown()
        server.server_close()
