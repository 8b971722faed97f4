"""The notebook widgets without a browser: the two-hop path, the explorers' synced state (what the views set and
what Python sets for them), a failing model in the menu."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from isanet.models import ISANet, ISANetConfig
from isanet.models.isa import Partition, long_range_group_ids, short_range_group_ids

pytest.importorskip("anywidget")

from isanet.notebook import attention_explorer, partition_explorer, partition_plots, plots, session
from isanet.notebook.model_menu import ModelChoice

# The label format the browser test reads (tests/browser/test_attention_explorer.py).
LABEL = re.compile(r"pixel \((\d+), (\d+)\) in the (\d+)×(\d+) image → feature \((\d+), (\d+)\) of (\d+)×(\d+)")


@pytest.mark.parametrize("size", [(13, 18, 4), (8, 8, 8), (5, 7, 3), (16, 9, 2)])
def test_two_hop_path_connects_every_pair(size) -> None:
    p = Partition(size[0], size[1], size[2], size[2])
    long_ids, short_ids = long_range_group_ids(p).numpy(), short_range_group_ids(p).numpy()
    for source in [(0, 0), (p.height - 1, p.width - 1), (p.height // 2, p.width // 3)]:
        for target in [(0, p.width - 1), (p.height - 1, 0), (p.height // 3, p.width // 2)]:
            (sy, sx), (vy, vx), (ty, tx) = partition_plots.two_hop_path(p, source, target)
            assert (sy - p.pad_top, sx - p.pad_left) == source and (ty - p.pad_top, tx - p.pad_left) == target
            assert long_ids[vy, vx] == long_ids[sy, sx], "via must be in the source's long-range group"
            assert short_ids[vy, vx] == short_ids[ty, tx], "via must be in the target's block"
    with pytest.raises(ValueError):
        partition_plots.two_hop_path(p, (p.height, 0), (0, 0))


def test_complexity_html_fills_in_the_formulas() -> None:
    p = Partition(128, 128)
    text = partition_plots.complexity_html(p)
    dense, isa = p.affinity_entries()
    assert f"{dense:,}" in text and f"{isa:,}" in text and f"{dense / isa:.1f}x" in text


def test_partition_explorer_state_is_its_synced_traits() -> None:
    explorer = partition_explorer.PartitionExplorer(13, 18, 4, source=(1, 2), target=(9, 13))
    assert explorer.partition == Partition(13, 18, 4, 4) and "via (9, 14)" in explorer.path_text()
    assert explorer.payload["axes"]["4"][12] == [4, 1, 16]  # 13 rows cut by 4: 4 blocks, 1 padded row on top, 16
    state = explorer.get_state()  # what the view receives
    assert (state["height"], state["down_factor"], state["target"]) == (13, 4, [9, 13])
    explorer.down_factor = 5
    assert explorer.partition.loc_h == 5
    explorer.height = 6  # the pixels are clamped into the smaller map, as in the view
    assert explorer.target == [5, 13] and explorer.source == [1, 2]
    explorer.down_factor = 99  # beyond the slider's bound: clamped like the slider
    assert explorer.down_factor == explorer.payload["max_down_factor"] == 12


@pytest.fixture(scope="module")
def explorer():
    torch.manual_seed(0)
    model = ISANet(ISANetConfig.tiny(channels=32, isa_channels=16, aux_channels=16)).eval()
    image = np.random.default_rng(0).integers(0, 255, size=(64, 104, 3), dtype=np.uint8)
    def broken():
        raise RuntimeError("no such file")

    choices = [ModelChoice("tiny", lambda: model), ModelChoice("broken", broken)]
    return attention_explorer.AttentionExplorer(image, choices)


def test_the_view_and_python_share_the_query_pixel(explorer) -> None:
    assert explorer.capture.feature_size == (8, 13)
    assert explorer.selected_pixel == (32, 52) and explorer.widget.pixel == [32, 52]
    payload = explorer.widget.payload  # what the view draws from: this model's capture, as the standalone page
    assert payload["feature"] == {"height": 8, "width": 13} and payload["model"] == "tiny"
    assert payload["long_range"]["shape"] == list(explorer.capture.isa.long_range[0].shape)
    explorer.widget.pixel = [10, 90]  # what a click in the view sends
    assert explorer.selected_pixel == (10, 90)
    assert explorer.feature_pixel == explorer.capture.to_feature(10, 90) == explorer.result.pixel
    match = LABEL.search(explorer.pixel_text())  # the view prints the same label
    assert match and tuple(map(int, match.groups()[:4])) == (10, 90, 64, 104)
    explorer.select(7, 0, coords="feature")  # from Python: the view is told
    assert explorer.feature_pixel == (7, 0) and explorer.widget.pixel == list(explorer.selected_pixel)
    result = explorer.result
    for name in ("long_range", "short_range", "composed", "dense"):
        attention = getattr(result, name)
        assert attention.feature.shape == (8, 13)
        assert attention.feature.sum() + attention.padding_mass == pytest.approx(1.0, abs=1e-4)


def test_explorer_keeps_working_when_a_model_fails_to_load(explorer) -> None:
    shown = explorer.widget.payload
    explorer.widget.model_index = 1  # the view's menu
    assert "no such file" in explorer.widget.status
    assert explorer.widget.model_index == 0 and explorer.capture is explorer.captures[0]
    assert explorer.widget.payload is shown  # the view keeps drawing the model it had


def test_find_zoo_checkpoints_matches_published_file_names(tmp_path) -> None:
    for name in ("isanet_r50-d8_512x1024_40k_cityscapes_20210901_054739-981bd763.pth",
                 "isanet_r50-d8_512x1024_80k_cityscapes_20210901_074202-89384497.pth", "unrelated.pth", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    found = session.find_zoo_checkpoints(tmp_path)
    assert sorted(found) == ["isanet_r50-d8_4xb2-40k_cityscapes-512x1024", "isanet_r50-d8_4xb2-80k_cityscapes-512x1024"]
    assert session.find_zoo_checkpoints(tmp_path / "missing") == {}


def test_quick_mode(monkeypatch) -> None:
    monkeypatch.setenv("ISANET_QUICK", "0")
    assert session.quick_mode() is False and session.quick_mode(True) is True
    monkeypatch.setenv("ISANET_QUICK", "1")
    assert session.quick_mode() is True


def test_repo_root_and_paths(tmp_path) -> None:
    root = session.repo_root()
    assert (root / "pyproject.toml").is_file() and session.repo_root(root / "notebooks") == root
    assert session.resolve_path("data/x", root) == root / "data" / "x"
    assert session.resolve_path(None) is None and session.resolve_path(tmp_path) == tmp_path


def test_colorize_uses_the_palette_and_white_for_ignore() -> None:
    picture = plots.colorize(np.array([[0, 1], [255, 1]]), [(10, 20, 30), (40, 50, 60)])
    assert picture.tolist() == [[[10, 20, 30], [40, 50, 60]], [[255, 255, 255], [40, 50, 60]]]
