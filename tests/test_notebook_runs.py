"""Every notebook runs to its end without an error, under the test runner's quick settings: the suite's run of
the notebooks (what ``pytest --nbmake notebooks/`` does: nbclient, the notebook's folder as working directory,
300 s a cell). A failure shows the failing cell's source and traceback.

With ``ISANET_SITE_DIR`` set (CI: ``kit.py site --quick`` first), each test checks the copy of its notebook that
the site build executed instead of running it again; a copy that is missing, or older than the notebook or the
package, fails the test and says to rebuild or unset the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("nbclient")

from isanet.notebook.site import cell_failure, executed_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT = 300  # seconds, as nbmake ran them (--nbmake-timeout=300)


@pytest.mark.parametrize("name", sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs_without_an_error(name: str) -> None:
    try:
        nb = executed_notebook(NOTEBOOKS / f"{name}.ipynb", os.environ.get("ISANET_SITE_DIR"), CELL_TIMEOUT)
    except ValueError as error:
        pytest.fail(str(error), pytrace=False)
    failure = cell_failure(nb)
    if failure is not None:
        pytest.fail(f"{name}.ipynb: {failure}", pytrace=False)
