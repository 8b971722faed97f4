"""Reach of stacked layers: known fractions on small maps, the boolean product in the right order, and the
notebook-06 pictures and explorer drawing what the reach says."""

from __future__ import annotations

import numpy as np
import pytest
import traitlets

from isanet.analysis.reach import reach, reach_table, reached_map


def test_reach_table_on_a_small_map() -> None:
    rows = {row.method: row for row in reach_table(6, 8, size=2)}
    pixels = 48
    assert rows["ccnet"].reach_1 == pytest.approx((6 + 8 - 1) / pixels) and rows["ccnet"].reach_2 == 1.0
    assert rows["window"].reach_1 == rows["window"].reach_1_min == pytest.approx(4 / pixels)
    assert rows["window"].reach_2 < 1.0 and rows["window"].reach_2_min == pytest.approx(4 / pixels)  # corners
    assert rows["strided"].reach_1 == pytest.approx((4 + 12 - 1) / pixels) and rows["strided"].reach_2 == 1.0
    assert rows["isa"].reach_1 == rows["axial"].reach_1 == rows["dense"].reach_1 == 1.0
    assert [rows[m].hops_per_layer for m in ("dense", "isa", "ccnet", "axial", "window", "strided")] == [
        1, 2, 1, 2, 1, 1]
    assert rows["dense"].affinity_entries == rows["dense"].dense_entries == pixels ** 2
    assert rows["ccnet"].affinity_vs_dense == pytest.approx(48 * 14 / 48 ** 2)


def test_window_layers_alternate_shift_and_spread() -> None:
    """Layer 1 plain, layer 2 shifted: pixel (1, 1) of a 6 x 6 map with windows of 2 reads its window, then
    the shifted window (1..2, 1..2) gathers the plain windows around it."""
    one, two = (reached_map("window", 6, 6, (1, 1), size=2, layers=count) for count in (1, 2))
    assert one.nonzero().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    # shifted window of (1, 1): rows/cols 1-2, whose plain windows cover rows/cols 0-3
    assert two.nonzero().tolist() == [[r, c] for r in range(4) for c in range(4)]
    assert reach("window", 6, 6, size=2, layers=3).sum() > reach("window", 6, 6, size=2, layers=2).sum()


def test_reached_map_rejects_a_pixel_off_the_map() -> None:
    with pytest.raises(ValueError, match=r"pixel \(6, 0\) is outside the 6x8 map"):
        reached_map("ccnet", 6, 8, (6, 0))


def test_pictures_and_explorer() -> None:
    pytest.importorskip("ipywidgets")
    from isanet.notebook import attention_patterns

    figure = attention_patterns.plot_reach(6, 8, (2, 3), size=2, methods=("ccnet", "window"))
    assert len(figure.axes) == 4
    cross = np.asarray(figure.axes[0].images[0].get_array(), dtype=bool)
    assert (cross == reached_map("ccnet", 6, 8, (2, 3), 2, 1).numpy()).all() and cross.sum() == 6 + 8 - 1
    assert "13 px (27%)" in figure.axes[0].get_title() and "48 px (100%)" in figure.axes[2].get_title()
    assert len(attention_patterns.plot_hops("isa", 5, 7, (0, 0), size=2).axes) == 2
    html = attention_patterns.reach_html(reach_table(6, 8, size=2))
    assert html.count("<tr>") == 7 and "criss-cross (CCNet)" in html

    explorer = attention_patterns.ReachExplorer(6, 8, (2, 3), size=2, methods=("window",), max_size=3)
    assert explorer.payload["sizes"] == [2, 3] and explorer.get_state()["pixel"] == [2, 3]
    explorer.pixel = [9, 3]  # clamped into the 6 x 8 map, as the view clamps a click
    assert explorer.pixel == [5, 3]
    with pytest.raises(traitlets.TraitError, match=r"size must be one of \[2, 3\], got 4"):
        explorer.size = 4
