"""The writers that went around the output guard, each case as a hostile user found it (issue: the guard on
every writer): the site build, a sample data set written again, an empty output name, a fresh training over a
log of your own, checkpoint pruning. Each refusal names the file, and every file of the user's keeps its bytes.
(The benchmarks' outputs: tests/benchmarks/test_benchmark_outputs.py; the ledger itself: tests/io/test_ledger.py;
that no writer is left out: tests/test_writers.py.)"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

import isanet
from isanet.cli import main
from isanet.data.registry import write_sample_dataset
from isanet.engine.config import TrainError
from isanet.engine.log import JsonlLog, read_log
from isanet.engine.state import write_checkpoint
from isanet.engine.trainer import TrainConfig, train
from isanet.io.atomic import write_text_atomic
from isanet.io.checkpoint import save_checkpoint
from isanet.io.outputs import LEDGER
from isanet.models.config import TINY
from isanet.notebook import site

VOC = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(capsys, *argv) -> tuple[int, list[str]]:
    code = main([str(arg) for arg in argv])
    return code, capsys.readouterr().err.strip().splitlines()


def test_the_site_keeps_an_index_and_a_mathjax_folder_of_yours(tmp_path, capsys):
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("my own page")
    assert site.main(["--out", str(out), "01_interlaced_partitions"]) == 2  # refused before any notebook runs
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"site: error: --out {out / 'index.html'}: already exists and was not written by isanet (no "
                   f"record in {out / LEDGER}); refusing to replace it: move it away or choose another name"]
    assert (out / "index.html").read_text() == "my own page"
    (out / "index.html").unlink()
    write_text_atomic("an earlier build's", out / "index.html")  # the kit's own: no longer in the way
    (out / "mathjax").mkdir()
    (out / "mathjax" / "tex-svg-full.js").write_text("my own MathJax")
    assert site.main(["--out", str(out), "01_interlaced_partitions"]) == 2
    assert f"--out {out / 'mathjax'}: holds tex-svg-full.js, which isanet did not write" in capsys.readouterr().err
    assert (out / "mathjax" / "tex-svg-full.js").read_text() == "my own MathJax"
    assert sorted(path.name for path in out.iterdir()) == [LEDGER, "index.html", "mathjax"]  # nothing built


def test_the_sites_mathjax_copy_is_reused_replaced_or_refused_by_its_ledger(tmp_path, monkeypatch):
    stand_in = tmp_path / "node_modules" / "mathjax"  # two small files in place of the npm package: the copy's rules
    (stand_in / "es5").mkdir(parents=True)
    (stand_in / "es5" / "tex-svg-full.js").write_text("// MathJax")
    (stand_in / "LICENSE").write_text("Apache-2.0")
    monkeypatch.setattr(site, "mathjax_source", lambda: stand_in)
    out = tmp_path / "site"
    out.mkdir()
    assert site.install_mathjax(out) == "mathjax/tex-svg-full.js"
    assert sorted(path.name for path in (out / "mathjax").iterdir()) == ["LICENSE", "tex-svg-full.js"]
    assert (out / "mathjax" / "LICENSE").read_text() == "Apache-2.0"
    script = out / "mathjax" / "tex-svg-full.js"
    script.unlink()  # an incomplete copy of the kit's own is replaced whole
    site.install_mathjax(out)
    assert script.read_text() == "// MathJax"
    (out / "mathjax" / "mine.js").write_text("// mine")
    with pytest.raises(ValueError, match=r"mathjax: holds mine\.js, which isanet did not write"):
        site.install_mathjax(out)
    assert (out / "mathjax" / "mine.js").read_text() == "// mine"


def test_without_the_npm_copy_of_mathjax_the_pages_load_none_and_the_index_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(site, "mathjax_source", lambda: None)
    assert site.install_mathjax(tmp_path) is None and not (tmp_path / "mathjax").exists()
    nbformat = pytest.importorskip("nbformat")
    cells = [nbformat.v4.new_markdown_cell("$N' = HW$")]
    page = site.to_html(nbformat.v4.new_notebook(cells=cells), "t", None)
    assert "<script" not in page and "$N' = HW$" in page  # no script at all: nothing fetched from the network
    typeset = site.to_html(nbformat.v4.new_notebook(cells=cells), "t", "mathjax/tex-svg-full.js")
    assert '<script defer="" src="mathjax/tex-svg-full.js"></script>' in typeset and "require.js" not in typeset
    assert "formulas are shown as TeX source" in site.index_html([], 1.0, quick=True, typeset=False)


def test_sample_data_written_again_keeps_the_files_you_added_inside_it(tmp_path, capsys):
    out = tmp_path / "data"
    args = ("sample-data", "voc", "--out", out, "--num-train", 1, "--num-val", 1, "--size", 32)
    assert cli(capsys, *args)[0] == 0
    assert cli(capsys, *args)[0] == 0  # the kit's own sample: replaced whole
    mine = out / "VOCdevkit" / "VOC2012" / "JPEGImages" / "my_photo.jpg"
    mine.write_bytes(b"a picture of mine")
    before = {path: sha(path) for path in out.rglob("*") if path.is_file()}
    code, err = cli(capsys, *args)
    assert code == 2 and err == [
        f"isanet sample-data: error: the earlier sample {mine.parents[1]}: holds JPEGImages/my_photo.jpg, which "
        f"isanet did not write (no record in {mine.parent / LEDGER}); refusing to replace the folder and lose it: "
        "move it away or choose another folder"]
    assert {path: sha(path) for path in out.rglob("*") if path.is_file()} == before


@pytest.mark.parametrize("argv", [("sample-data", "voc", "--out", ""),
                                  ("sample-checkpoint", VOC, "--out", ""),
                                  ("train", VOC, "--data-root", "d", "--work-dir", "")],
                         ids=["sample-data --out", "sample-checkpoint --out", "train --work-dir"])
def test_an_empty_output_name_is_refused_not_taken_for_the_current_folder(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = cli(capsys, *argv)
    option = argv[-2]
    assert code == 2 and len(err) == 1 and err[0].startswith(f"isanet {argv[0]}: error: {option}: expected a ")
    assert "got an empty one (it would mean the current folder; write . for that)" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_the_api_and_the_site_refuse_an_empty_name_too(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="out_dir: expected a folder name, got an empty one"):
        write_sample_dataset("voc", "")
    with pytest.raises(ValueError, match="TrainConfig.work_dir: expected a folder name, got an empty one"):
        train(TrainConfig(data_root="d", work_dir=""))
    assert site.main(["--out", ""]) == 2
    assert "site: error: --out: expected a folder name, got an empty one" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_fresh_training_keeps_a_log_of_yours(tmp_path):
    voc_root = write_sample_dataset("voc", tmp_path / "voc", num_train=1, num_val=1, size=64).parent
    work_dir = tmp_path / "run"
    work_dir.mkdir()
    (work_dir / "log.jsonl").write_text('{"iter": 1, "note": "my own notes"}\n')
    config = TrainConfig(data_root=voc_root, work_dir=work_dir, iters=1, crop_size=(64, 64), batch_size=1,
                         resize_scale=(256, 64), val_scale=(256, 64), eval_every=0, model_overrides=TINY,
                         progress=False, device="cpu")
    with pytest.raises(TrainError, match=r"TrainConfig.work_dir holds .*log\.jsonl: already exists and was not "
                                         r"written by isanet \(no record in .*\).*\(a fresh run starts its own log"):
        train(config)
    assert (work_dir / "log.jsonl").read_text() == '{"iter": 1, "note": "my own notes"}\n'
    assert sorted(path.name for path in work_dir.iterdir()) == ["log.jsonl"]


def test_a_resumed_run_takes_its_folders_log_as_its_own_and_a_fresh_one_never(tmp_path):
    lines = "".join(f'{{"iter": {iteration}}}\n' for iteration in range(5))
    (tmp_path / "log.jsonl").write_text(lines)  # a run of an older version: its appends were never recorded
    log = JsonlLog(tmp_path / "log.jsonl", keep_up_to=2, resumed=True)
    log.write({"iter": 3})
    log.close()
    assert [record["iter"] for record in read_log(tmp_path / "log.jsonl")] == [0, 1, 2, 3]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "log.jsonl").write_text(lines)
    with pytest.raises(ValueError, match="log.jsonl: already exists and was not written by isanet"):
        JsonlLog(tmp_path / "other" / "log.jsonl", keep_up_to=-1)
    assert (tmp_path / "other" / "log.jsonl").read_text() == lines


def test_pruning_old_checkpoints_keeps_a_file_of_yours_with_a_checkpoints_name(tmp_path):
    mine = tmp_path / "iter_0.pth"
    mine.write_bytes(b"my own weights")
    model = isanet.ISANet(isanet.ISANetConfig.tiny())
    save_checkpoint(model, tmp_path / "iter_2.pth", {"iter": 2})  # an earlier save of the kit's
    write_checkpoint(model, tmp_path, 4, {"iter": 4}, keep=1)
    assert sorted(path.name for path in tmp_path.glob("*.pth")) == ["iter_0.pth", "iter_4.pth", "latest.pth"]
    assert mine.read_bytes() == b"my own weights"
    assert torch.load(tmp_path / "latest.pth", weights_only=True)["meta"]["iter"] == 4


def test_the_site_is_served_only_once_built(tmp_path, capsys):
    assert site.main(["--serve", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"site: error: --out {tmp_path.resolve()}: holds no site (index.html); build it first with "
                   "python3 kit.py site (--quick: in minutes)")
