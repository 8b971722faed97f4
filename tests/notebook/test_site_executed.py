"""Each notebook runs once in CI: the site build keeps every notebook as it ran (``site/executed/``), and the
notebook tests check those copies instead of running them again (``ISANET_SITE_DIR``). Here on two tiny
notebooks: the copies hold the outputs and the error, they are used as they are, a stale or missing copy is
refused, and without a site the notebook runs and its failing cell is reported."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

import isanet.notebook.site as site  # noqa: E402

FAILING_SOURCE = "total = 6 * 7\ntotal / 0"


def _write_notebook(folder: Path, name: str, *sources: str) -> Path:
    path = folder / f"{name}.ipynb"
    cells = [nbformat.v4.new_markdown_cell(f"# {name}")] + [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """The notebooks folder (01 runs, 02 fails in its second code cell) and the site built from it."""
    root = tmp_path_factory.mktemp("executed")
    notebooks = root / "notebooks"
    notebooks.mkdir()
    _write_notebook(notebooks, "01_runs", "print('ran once')", "answer = 42")
    _write_notebook(notebooks, "02_fails", "print('before the error')", FAILING_SOURCE, "print('never')")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ISANET_QUICK", "1")  # build_site sets it for its kernels: restored afterwards
        assert site.build_site(root / "site", timeout=60, notebooks_dir=notebooks, quick=True) == 1
    return notebooks, root / "site"


def test_the_build_keeps_each_notebook_as_it_ran_and_its_failing_cell(built):
    notebooks, out = built
    copies = sorted(path.name for path in (out / site.EXECUTED_DIR).glob("*.ipynb"))
    assert copies == ["01_runs.ipynb", "02_fails.ipynb"]
    runs = nbformat.read(out / site.EXECUTED_DIR / "01_runs.ipynb", as_version=4)
    assert runs.cells[1].outputs[0]["text"] == "ran once\n" and runs.cells[2].execution_count == 2
    assert site.cell_failure(runs) is None
    fails = nbformat.read(out / site.EXECUTED_DIR / "02_fails.ipynb", as_version=4)
    failure = site.cell_failure(fails)
    assert failure.startswith(f"cell 2 failed:\n{FAILING_SOURCE}\n")
    assert "ZeroDivisionError" in failure and "\x1b[" not in failure
    assert fails.cells[3].execution_count is None  # the run stopped at the error, as in the page


def test_with_a_site_the_tests_use_its_copy_and_run_nothing(built, monkeypatch):
    notebooks, out = built

    def run_again(*args, **kwargs):
        raise AssertionError("the notebook was executed a second time")

    monkeypatch.setattr(site, "execute", run_again)
    copy = site.executed_notebook(notebooks / "01_runs.ipynb", out)
    assert copy.cells[1].outputs[0]["text"] == "ran once\n"
    assert "ZeroDivisionError" in site.cell_failure(site.executed_notebook(notebooks / "02_fails.ipynb", out))


def test_a_missing_or_stale_copy_is_refused(built, tmp_path):
    notebooks, out = built
    folder, copies = tmp_path / "notebooks", tmp_path / "site" / site.EXECUTED_DIR
    copies.mkdir(parents=True)
    folder.mkdir()
    notebook = Path(shutil.copy(notebooks / "01_runs.ipynb", folder))
    with pytest.raises(ValueError, match=r"no executed copy .*01_runs\.ipynb.*unset ISANET_SITE_DIR"):
        site.executed_notebook(notebook, tmp_path / "site")
    copy = Path(shutil.copy(out / site.EXECUTED_DIR / "01_runs.ipynb", copies))
    assert site.cell_failure(site.executed_notebook(notebook, tmp_path / "site")) is None
    os.utime(copy, (0, 0))  # written before the package's files
    with pytest.raises(ValueError, match=r"01_runs\.ipynb is older than .*isanet.*rebuild the site"):
        site.executed_notebook(notebook, tmp_path / "site")
    _write_notebook(folder, "01_runs", "print('ran once')", "answer = 43")  # the notebook changed since
    with pytest.raises(ValueError, match=r"ran other cells than .*01_runs\.ipynb has now"):
        site.executed_notebook(notebook, tmp_path / "site")


def test_without_a_site_the_notebook_runs_here_and_its_failing_cell_is_reported(built):
    notebooks, _ = built
    failure = site.cell_failure(site.executed_notebook(notebooks / "02_fails.ipynb", timeout=60))
    assert failure.startswith(f"cell 2 failed:\n{FAILING_SOURCE}\n") and "ZeroDivisionError" in failure


def _executed(*cells) -> object:
    return nbformat.v4.new_notebook(cells=list(cells))


def _ran(source: str, count: int | None, *outputs, tags: tuple[str, ...] = ()):
    cell = nbformat.v4.new_code_cell(source, execution_count=count, metadata={"tags": list(tags)})
    cell.outputs = list(outputs)
    return cell


def test_allowed_errors_skipped_cells_and_the_site_s_own_cells_are_judged_like_nbmake():
    error = nbformat.v4.new_output("error", ename="ValueError", evalue="bad",
                                   traceback=["\x1b[31mValueError\x1b[0m: bad"])
    allowed = _ran("raise ValueError('bad')", 1, error, tags=(site.RAISES_TAG,))
    skipped = _ran("slow()", None, tags=(site.SKIP_TAG,))
    assert site.cell_failure(_executed(allowed, skipped, _ran("", None), _ran("x = 1", 2))) is None
    assert site.cell_failure(_executed(allowed, _ran("x = 1", None))) == (
        "cell 1 never ran (the run stopped before it):\nx = 1")
    added = _ran("explorer.save_html('page.html')", 2, error, tags=(site.HIDDEN_TAG,))
    assert site.cell_failure(_executed(_ran("explorer = 1", 1), added)) == (
        "the cell the site build added after cell 0 failed:\nexplorer.save_html('page.html')\n"
        "------------------\nValueError: bad")
