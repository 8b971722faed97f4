"""The teaching notebooks are kept as pairs: ``notebooks/NAME.ipynb`` (no outputs) + ``notebooks/NAME.py``
(jupytext ``py:percent``) with the same cells. Each starts with a markdown goal, and its first code cell holds
the parameters (tagged ``parameters``) so a user can point it at real data. Running them is ``pytest --nbmake
notebooks/``'s job; this file checks their form, fast.

To edit a notebook: change the ``.py`` (or the ``.ipynb`` in JupyterLab) and run
``jupytext --sync notebooks/NAME.py``; then clear the outputs of the ``.ipynb`` before committing, e.g.
``jupytext --to ipynb notebooks/NAME.py`` (writes the notebook from the script, without outputs).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ("01_interlaced_partitions", "02_attention_explorer", "03_memory_vs_dense", "04_finetune_voc",
            "05_evaluate_pretrained")
PAIRS = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))


def _cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_every_notebook_is_there_and_paired() -> None:
    assert set(EXPECTED) <= set(PAIRS), f"missing notebooks: {sorted(set(EXPECTED) - set(PAIRS))}"
    scripts = {path.stem for path in NOTEBOOKS.glob("*.py")}
    assert scripts == set(PAIRS), (f"unpaired: .ipynb without .py {sorted(set(PAIRS) - scripts)}, "
                                   f".py without .ipynb {sorted(scripts - set(PAIRS))}")
    assert (NOTEBOOKS / "README.md").is_file()


@pytest.mark.parametrize("name", PAIRS)
def test_pair_has_the_same_cells(name: str) -> None:
    notebook = jupytext.read(NOTEBOOKS / f"{name}.ipynb")
    script = jupytext.read(NOTEBOOKS / f"{name}.py", fmt="py:percent")
    ours, theirs = _cells(notebook), _cells(script)
    assert len(ours) == len(theirs), f"{name}: {len(ours)} cells in the .ipynb, {len(theirs)} in the .py"
    for index, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, f"{name}: cell {index} differs between .ipynb and .py (run `jupytext --sync`):\n{a}\n---\n{b}"
    assert notebook.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", (
        f"{name}.ipynb is not paired with py:percent in its metadata")
    assert [cell.metadata.get("tags") for cell in notebook.cells] == \
        [cell.metadata.get("tags") for cell in script.cells], f"{name}: cell tags differ between the pair"


@pytest.mark.parametrize("name", PAIRS)
def test_ipynb_has_no_outputs(name: str) -> None:
    notebook = jupytext.read(NOTEBOOKS / f"{name}.ipynb")
    dirty = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code" and (
        cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{name}.ipynb has outputs in cells {dirty}: clear them before committing"


@pytest.mark.parametrize("name", PAIRS)
def test_goal_first_then_parameters(name: str) -> None:
    cells = jupytext.read(NOTEBOOKS / f"{name}.ipynb").cells
    first = cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), f"{name}: must open with a title"
    assert "**Goal:**" in first.source, f"{name}: the first cell must state the goal ('**Goal:** ...')"
    code = [cell for cell in cells if cell.cell_type == "code"]
    parameters = code[0]
    assert "parameters" in parameters.metadata.get("tags", []), f"{name}: first code cell must be tagged 'parameters'"
    statements = ast.parse(parameters.source).body
    assert statements and all(isinstance(node, (ast.Assign, ast.AnnAssign)) for node in statements), (
        f"{name}: the parameters cell must only assign values (no imports or calls)")
    assigned = {target.id for node in statements for target in
                (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(target, ast.Name)}
    assert "DEVICE" in assigned or name.startswith("01_"), f"{name}: parameters should include DEVICE"


@pytest.mark.parametrize("name", PAIRS)
def test_heavy_lifting_is_imported_from_the_package(name: str) -> None:
    """Notebooks call the package; they may define small glue functions, but never classes."""
    source = (NOTEBOOKS / f"{name}.py").read_text()
    tree = ast.parse(source)
    assert not [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)], \
        f"{name}: move classes into the isanet package"
    imports = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert any(module and module.startswith("isanet") for module in imports), f"{name}: imports nothing from isanet"
