"""The standalone explorer page without a browser: what it stores equals the capture within the stated
quantisation, the payload survives the trip through the HTML, and the command's bad inputs get one line.
(The page's own arithmetic, in Chromium, is tested in tests/browser/test_explorer_page.py.)"""

from __future__ import annotations

import base64
import json
import re

import cv2
import numpy as np
import pytest
import torch

from isanet.analysis.probe import capture
from isanet.cli import main
from isanet.data.datasets import read_image
from isanet.data.transforms import resize_image
from isanet.models import ISANet, ISANetConfig
from isanet.notebook import explorer_html
from isanet.notebook.explorer_html import MAP_TITLES


def _captured():
    torch.manual_seed(0)
    model = ISANet(ISANetConfig.tiny(channels=32, isa_channels=16, aux_channels=16)).eval()
    image = np.random.default_rng(0).integers(0, 255, size=(60, 90, 3), dtype=np.uint8)
    return capture(model, torch.from_numpy(image).permute(2, 0, 1).float()[None] / 50), image


def _decoded(text: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.dtype(dtype).newbyteorder("<"))


def test_quantised_rows_are_within_max_over_510() -> None:
    rows = torch.softmax(torch.randn(50, 37) * 3, dim=-1)
    codes, scale = explorer_html.quantise_rows(rows)
    back = explorer_html.dequantise_rows(codes, scale)
    bound = rows.max(dim=1).values.double().numpy()[:, None] / 510
    assert codes.dtype == np.uint8 and codes.shape == (50, 37) and codes.max(axis=1).min() == 255
    assert (np.abs(back - rows.double().numpy()) <= bound + 1e-9).all()
    assert np.abs(back - rows.double().numpy()).max() > bound.min() / 10  # it is a real rounding, not a copy


def test_payload_holds_isa_weights_and_dense_tokens(one_thread) -> None:
    captured, image = _captured()
    payload, sizes = explorer_html.build_payload(captured, image, "tiny", "RANDOM WEIGHTS", pixel=(3, 4))
    p = captured.isa.partition
    for name in ("long_range", "short_range"):
        weights = getattr(captured.isa, name)[0]
        stored = payload[name]
        assert stored["shape"] == list(weights.shape)
        codes = _decoded(stored["codes"], np.uint8).reshape(-1, weights.shape[-1])
        scale = _decoded(stored["scale"], np.float32)
        flat = weights.reshape(-1, weights.shape[-1]).double().numpy()
        back = explorer_html.dequantise_rows(codes, scale)
        assert (np.abs(back - flat) <= flat.max(axis=1, keepdims=True) / 510 + 1e-9).all()
    query = _decoded(payload["dense"]["query"], np.float16).reshape(captured.dense_query.shape)
    assert np.array_equal(query, captured.dense_query.half().numpy())
    hw = p.padded_h * p.padded_w
    assert sizes.isa_numbers == hw * (p.glb_h * p.glb_w + p.loc_h * p.loc_w)
    assert sizes.dense_numbers == (captured.feature_size[0] * captured.feature_size[1]) ** 2
    assert payload["pixel"] == [3, 4] and payload["note"] == "RANDOM WEIGHTS"
    assert payload["titles"] == MAP_TITLES  # the page's panels are titled as the notebook explorer's
    with pytest.raises(ValueError, match="60x90x3 picture"):
        explorer_html.build_payload(captured, image[:, :80], "tiny")


def test_html_carries_the_payload_intact(tmp_path, one_thread) -> None:
    captured, image = _captured()
    note = "a note with </script> in it"
    sizes = explorer_html.save_explorer_html(captured, image, tmp_path / "page.html", "tiny", note)
    text = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert sizes.file_bytes == (tmp_path / "page.html").stat().st_size
    assert text.count("</script>") == 1, "the data must not close the script element"
    data = re.search(r"const D = (\{.*?\});\n", text).group(1)
    payload = json.loads(data)
    assert payload["note"] == note and payload["image"]["height"] == 60 and payload["feature"]["width"] == 12
    assert "http://" not in text and "https://" not in text, "the page must not reach the network"


def test_attention_command_rejects_bad_input_in_one_line(tmp_path, capsys) -> None:
    assert main(["attention", str(tmp_path / "missing.png"), "--model", "isanet_r50-d8_4xb4-20k_voc12aug-512x512",
                 "--out", str(tmp_path / "p.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.png" in err and err.startswith("isanet attention: error:")
    (tmp_path / "bad.png").write_bytes(b"no picture")
    assert main(["attention", str(tmp_path / "bad.png"), "--model", "isanet_r50-d8_4xb4-20k_voc12aug-512x512",
                 "--out", str(tmp_path / "p.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot read image" in err and "not an image file" in err and "bad.png" in err
    assert not (tmp_path / "p.html").exists()


def test_attention_command_teaching_writes_the_live_page_with_the_teaching_models_weights(tmp_path, capsys,
                                                                                       one_thread) -> None:
    from isanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize
    from isanet.notebook.model_menu import TEACHING_LABEL, TEACHING_NOTE, teaching_choice

    picture = np.random.default_rng(2).integers(0, 255, size=(90, 120, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "mine.png"), picture[:, :, ::-1])  # RGB -> BGR for OpenCV
    assert main(["attention", str(tmp_path / "mine.png"), "--teaching", "--pixel", "30", "40",
                 "--out", str(tmp_path / "p.html")]) == 0
    out = capsys.readouterr().out
    assert "the live page on your 120x160 picture" in out and "SYNTHETIC context task only" in out
    assert (tmp_path / "p_files" / "model.onnx").is_file()
    payload = json.loads(re.search(r"const DATA = (\{.*?\});\n", (tmp_path / "p.html").read_text()).group(1))
    assert payload["label"] == TEACHING_LABEL and payload["note"] == TEACHING_NOTE and payload["query"] == [30, 40]
    assert payload["size"] == [120, 160] and payload["partition"] == {"height": 15, "width": 20, "loc_h": 8, "loc_w": 8}
    resized = resize_image(read_image(tmp_path / "mine.png"), (120, 160))
    model = teaching_choice().load().eval()
    captured = capture(model, normalize(resized, IMAGENET_MEAN, IMAGENET_STD)[None])
    shown = _decoded(payload["precomputed"]["long_range"], np.float32).reshape(captured.isa.long_range[0].shape)
    assert captured.isa.long_range.shape[-1] == 2 * 3  # the 15 x 20 map in 8 x 8 blocks: 6 keys a long-range group
    assert np.abs(shown - captured.isa.long_range[0].numpy()).max() <= 1e-5, "the page holds the teaching model's maps"
    labels = _decoded(payload["precomputed"]["labels"], np.int32).reshape(120, 160)
    assert (labels == captured.logits.argmax(1)[0].numpy()).mean() >= 0.999
    assert (_decoded(payload["pictures"][0]["label"], np.uint8).reshape(120, 160) == labels).all()  # its own mask


def test_attention_command_teaching_without_image_offers_the_context_pictures(tmp_path, capsys, one_thread) -> None:
    from isanet.notebook.live_page import teaching_pictures

    assert main(["attention", "--teaching", "--out", str(tmp_path / "live.html")]) == 0
    payload = json.loads(re.search(r"const DATA = (\{.*?\});\n", (tmp_path / "live.html").read_text()).group(1))
    expected = teaching_pictures()
    assert [picture["name"] for picture in payload["pictures"]] == [picture.name for picture in expected]
    assert payload["size"] == [160, 160] and "team" in expected[0].name
    shown = _decoded(payload["pictures"][1]["label"], np.uint8).reshape(160, 160)
    assert (shown == expected[1].label).all()


@pytest.mark.parametrize("extra, message", [
    (["--teaching", "--model", "isanet_r50-d8_4xb4-20k_voc12aug-512x512"], "--teaching replaces --model"),
    ([], "--model is required"),
])
def test_attention_command_wants_exactly_one_source_of_weights(tmp_path, capsys, extra, message) -> None:
    cv2.imwrite(str(tmp_path / "mine.png"), np.zeros((16, 16, 3), np.uint8))
    assert main(["attention", str(tmp_path / "mine.png"), *extra, "--out", str(tmp_path / "p.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and not (tmp_path / "p.html").exists()


def test_notebook_explorer_saves_what_it_shows(tmp_path, one_thread) -> None:
    pytest.importorskip("ipywidgets")
    pytest.importorskip("anywidget")
    from isanet.notebook.attention_explorer import AttentionExplorer
    from isanet.notebook.model_menu import ModelChoice

    torch.manual_seed(0)
    model = ISANet(ISANetConfig.tiny(channels=32, isa_channels=16, aux_channels=16)).eval()
    image = np.random.default_rng(1).integers(0, 255, size=(48, 72, 3), dtype=np.uint8)
    explorer = AttentionExplorer(image, [ModelChoice("tiny random", lambda: model, "random")])
    explorer.select(10, 50)
    sizes = explorer.save_html(tmp_path / "mine.html")
    payload = json.loads(re.search(r"const D = (\{.*?\});\n", (tmp_path / "mine.html").read_text()).group(1))
    assert payload["pixel"] == [10, 50] and payload["model"] == "tiny random"
    assert "RANDOM WEIGHTS" in payload["note"] and sizes.file_bytes > 0
    assert payload["feature"] == {"height": 6, "width": 9}


def test_attention_command_wants_an_image_unless_teaching(tmp_path, capsys) -> None:
    assert main(["attention", "--model", "isanet_r50-d8_4xb4-20k_voc12aug-512x512", "--out",
                 str(tmp_path / "p.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "IMAGE is required, unless --teaching" in err
