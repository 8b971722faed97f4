"""The partition (01) and pattern (06) explorers as standalone pages, without a browser: each page is written whole,
reaches no network, and holds exactly the geometry the package computes (Partition's padding for every slider
position; the reach matrices of :mod:`isanet.analysis.reach` for every size); the site puts each page beside its
notebook and links it. (The pages' clicks, in Chromium: tests/browser/test_explorer_pages.py.)"""

from __future__ import annotations

import base64
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from isanet.analysis.reach import reach
from isanet.models.isa import Partition
from isanet.notebook import explorer_pages
from isanet.notebook.partition_plots import two_hop_path
from isanet.notebook.session import repo_root

pytestmark = pytest.mark.usefixtures("one_thread")


def payload_of(path: Path) -> tuple[str, dict]:
    text = path.read_text(encoding="utf-8")
    return text, json.loads(re.search(r"const D = (\{.*?\});\n", text).group(1))


def assert_self_contained(text: str) -> None:
    assert text.count("</script>") == 1, "the data must not close the script element"
    assert "http://" not in text and "https://" not in text, "the page must not reach the network"
    assert "<script src" not in text and "<link" not in text


def test_partition_page_holds_every_slider_position_as_partition_computes_it(tmp_path) -> None:
    size = explorer_pages.save_partition_page(tmp_path / "p.html", height=7, width=11, down_factor=3,
                                              source=(1, 2), target=(6, 10), max_size=20, max_down_factor=6)
    text, payload = payload_of(tmp_path / "p.html")
    assert size == (tmp_path / "p.html").stat().st_size
    assert_self_contained(text)
    assert (payload["height"], payload["width"], payload["down_factor"]) == (7, 11, 3)
    assert payload["source"] == [1, 2] and payload["target"] == [6, 10]
    assert sorted(map(int, payload["axes"])) == list(range(1, 7))
    for factor in range(1, 7):
        for n in range(1, 21):
            p = Partition(n, n, factor, factor)  # rows and columns: the same rule
            assert payload["axes"][str(factor)][n - 1] == [p.glb_h, p.pad_top, p.padded_h] == [
                p.glb_w, p.pad_left, p.padded_w], (factor, n)
    # what the page's arithmetic then gives for the two-hop path (the page's viaOf), against two_hop_path
    p = Partition(7, 11, 3, 3)
    glb, top, _ = payload["axes"]["3"][6]
    _, left, _ = payload["axes"]["3"][10]
    (sy, sx), (ty, tx) = (1 + top, 2 + left), (6 + top, 10 + left)
    via = (ty // 3 * 3 + sy % 3, tx // 3 * 3 + sx % 3)
    assert via == two_hop_path(p, (1, 2), (6, 10))[1] and glb == p.glb_h


def test_partition_page_rejects_bad_settings_in_one_line(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"^target \(7, 0\) is outside the 7x11 map$"):
        explorer_pages.partition_payload(7, 11, 3, target=(7, 0))
    with pytest.raises(ValueError, match="down_factor must be in 1..max_down_factor=12, got 13"):
        explorer_pages.partition_payload(7, 11, 13)
    with pytest.raises(ValueError, match="height and width must be in 1..max_size=40, got 41x11"):
        explorer_pages.partition_payload(41, 11)


def test_reach_bits_round_trip() -> None:
    matrix = np.random.default_rng(0).random((13, 13)) > 0.5  # 13: rows that are not whole bytes
    assert np.array_equal(explorer_pages.unpack_reach(explorer_pages.pack_reach(matrix), 13), matrix)


def test_pattern_page_holds_each_methods_reach_for_every_size(tmp_path) -> None:
    height, width, sizes = 7, 10, (2, 3, 4)
    size = explorer_pages.save_pattern_page(tmp_path / "r.html", height=height, width=width, pixel=(3, 4), size=3,
                                            sizes=sizes)
    text, payload = payload_of(tmp_path / "r.html")
    assert size == (tmp_path / "r.html").stat().st_size
    assert_self_contained(text)
    assert payload["pixel"] == [3, 4] and payload["size"] == 3 and payload["sizes"] == list(sizes)
    assert payload["labels"]["isa"] and payload["layers"] == [1, 2]
    pixels = height * width
    for side in sizes:
        for method in payload["methods"]:
            for row, layers in enumerate(payload["layers"]):
                stored = payload["matrices"][payload["index"][str(side)][method][row]]
                expected = reach(method, height, width, side, layers).numpy()
                assert np.array_equal(explorer_pages.unpack_reach(stored, pixels), expected), (method, side, layers)
    # the page's own bit arithmetic (byte q * ceil(HW/8) + k // 8, bit 7 - k % 8) on one window row
    packed = np.frombuffer(base64.b64decode(payload["matrices"][payload["index"]["3"]["window"][0]]),
                           dtype=np.uint8)
    query, row_bytes = 3 * width + 4, -(-pixels // 8)
    bits = [(packed[query * row_bytes + key // 8] >> (7 - key % 8)) & 1 for key in range(pixels)]
    assert bits == reach("window", height, width, 3, 1)[query].int().tolist() and 1 < sum(bits) < pixels
    # each distinct matrix is stored once: dense and one ISA layer are the same all-ones matrix
    assert payload["index"]["2"]["dense"][0] == payload["index"]["2"]["isa"][0] == payload["index"]["4"]["dense"][1]
    assert len(payload["matrices"]) == len(set(payload["matrices"]))


def test_pattern_page_rejects_bad_settings_in_one_line() -> None:
    with pytest.raises(ValueError, match="size 5 must be one of sizes"):
        explorer_pages.pattern_payload(7, 10, (0, 0), size=5, sizes=(2, 3))
    with pytest.raises(ValueError, match="methods must be among .*, got linear"):
        explorer_pages.pattern_payload(7, 10, (0, 0), size=2, sizes=(2,), methods=("isa", "linear"))
    with pytest.raises(ValueError, match=r"pixel \(7, 0\) is outside the 7x10 map"):
        explorer_pages.pattern_payload(7, 10, (7, 0), size=2, sizes=(2,))


def test_the_notebook_explorers_save_what_they_show(tmp_path) -> None:
    pytest.importorskip("ipywidgets")
    from isanet.notebook.attention_patterns import ReachExplorer
    from isanet.notebook.partition_explorer import PartitionExplorer

    partitions = PartitionExplorer(9, 12, 3, source=(1, 1), target=(8, 11), max_size=16, max_down_factor=5)
    partitions.down_factor = 4
    partitions.source = [1, 5]
    partitions.save_html(tmp_path / "p.html")
    _, payload = payload_of(tmp_path / "p.html")
    assert (payload["down_factor"], payload["source"], payload["max_size"], payload["max_down_factor"]) == (
        4, [1, 5], 16, 5)
    patterns = ReachExplorer(8, 9, (2, 3), size=3, methods=("isa", "window"), max_size=4)
    patterns.pixel = [6, 3]
    patterns.save_html(tmp_path / "r.html")
    _, payload = payload_of(tmp_path / "r.html")
    assert (payload["pixel"], payload["size"], payload["sizes"], payload["methods"]) == (
        [6, 3], 3, [2, 3, 4], ["isa", "window"])


def test_the_site_embeds_each_page_after_its_cell_and_links_it(tmp_path, monkeypatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    from isanet.notebook import live_page
    from isanet.notebook.site import EMBEDS, HIDDEN_TAG, LIVE_PAGE, embed_page, index_html

    saved: list[str] = []  # the pages the inserted cells write
    monkeypatch.setattr(live_page, "save_teaching_live_page", lambda path, first: saved.append(path))
    for name, embeds in EMBEDS.items():
        for embed in embeds:
            nb = nbformat.read(repo_root() / "notebooks" / f"{name}.ipynb", as_version=4)
            count = len(nb.cells)
            assert embed_page(nb, tmp_path, embed), f"{name}: no `{embed.mark}` cell"
            (inserted,) = [cell for cell in nb.cells if HIDDEN_TAG in cell.metadata.get("tags", [])]
            position = nb.cells.index(inserted)
            assert len(nb.cells) == count + 1 and embed.mark in nb.cells[position - 1].source
            assert f"({str(tmp_path / embed.page)!r}" in inserted.source
            namespace = {"explorer": type("StandIn", (), {"save_html": lambda self, path: saved.append(path)})(),
                         "IMAGE_INDEX": 2}
            *lines, last = inserted.source.splitlines()
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # IPython warns of a raw <iframe> in HTML(...): the page would show it
                exec("\n".join(lines), namespace)
                frame = eval(last, namespace)._repr_html_()
            assert saved[-1] == str(tmp_path / embed.page)
            assert f'src="{embed.page}"' in frame and 'class="isanet-explorer-frame"' in frame
            assert f'height="{embed.height}"' in frame
    assert LIVE_PAGE in {embed.page for embed in EMBEDS["02_attention_explorer"]}
    index = index_html([("01_interlaced_partitions.html", "01", ""), ("06_efficient_attention.html", "06", "")], 1.0,
                       True)
    assert f'href="{EMBEDS["01_interlaced_partitions"][0].page}"' in index
    assert f'href="{EMBEDS["06_efficient_attention"][0].page}"' in index
    assert f'href="{LIVE_PAGE}"' not in index  # notebook 02 was not built
