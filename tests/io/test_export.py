"""ONNX export: one file for every image size, equal to PyTorch within 1e-4 relative (ONNX Runtime)."""

import contextlib
import io

import pytest
import torch

import isanet
from isanet.cli import main
from isanet.io.export import MIN_SIZE, check_onnx, export_onnx, onnx_runner, onnx_session
from isanet.io.outputs import LEDGER

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, one_thread):
    """The tiny model with seeded weights, saved as an isanet checkpoint, exported and checked by the CLI (one
    export for the module: it takes ~20 s); also what the command printed."""
    from isanet.data.sample_checkpoint import random_state_dict

    folder = tmp_path_factory.mktemp("export")
    model = isanet.ISANet(isanet.ISANetConfig.tiny())
    model.load_state_dict(random_state_dict(model, seed=3))
    checkpoint = isanet.save_checkpoint(model, folder / "tiny.pth")
    out, printed = folder / "tiny.onnx", io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    return model.eval(), out, printed.getvalue()


def test_onnx_matches_pytorch_at_three_sizes_one_not_divisible(exported):
    model, path, _ = exported
    # 1/8 maps: 12x16 (padded to 16x16), 9x25 (odd: 7 rows and 7 columns of padding), 16x32 (no padding)
    rows = check_onnx(model, path, sizes=((96, 128), (72, 200), (128, 256)))
    assert [row["size"] for row in rows] == [[96, 128], [72, 200], [128, 256]]
    for row in rows:
        assert row["max_rel_error"] < 1e-4, row


def test_onnx_output_shape_follows_the_input(exported):
    model, path, _ = exported
    run = onnx_runner(onnx_session(path, threads=1))
    for height, width in ((MIN_SIZE, MIN_SIZE), (130, 97)):
        x = torch.randn(1, 3, height, width)
        out = run(x)
        assert out.shape == (1, model.num_classes, height, width)
        assert out.dtype == torch.float32
        with torch.no_grad():
            assert torch.equal(out.argmax(1), model(x).argmax(1))


def test_cli_export_checks_and_reports(exported):
    _, path, text = exported
    assert "check passed" in text and text.count("onnxruntime vs pytorch at") == 3
    assert "385x517" in text  # the size down_factor does not divide
    left = sorted(file.name for file in path.parent.iterdir() if file.name != LEDGER)
    assert left == ["tiny.onnx", "tiny.pth"]  # no temporary left


def test_export_refuses_a_small_example(tmp_path):
    model = isanet.ISANet(isanet.ISANetConfig.tiny())
    with pytest.raises(ValueError, match="at least 65"):
        export_onnx(model, tmp_path / "x.onnx", example_size=(32, 512))
    assert not (tmp_path / "x.onnx").exists()


def test_export_refuses_the_flex_kernel(tmp_path):
    model = isanet.ISANet(isanet.ISANetConfig.tiny(kernel="flex"))
    with pytest.raises(ValueError, match="kernel='flex' has no ONNX form"):
        export_onnx(model, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
