"""The teaching notebooks are kept as pairs: ``notebooks/NAME.ipynb`` (no outputs) + ``notebooks/NAME.py``
(jupytext ``py:percent``) with the same cells. Each starts with a markdown goal, and its first code cell holds
the parameters (tagged ``parameters``) so a user can point it at real data. Running them is
``tests/test_notebook_runs.py``'s job; this file checks their form, fast.

To edit a notebook: change the ``.py`` (or the ``.ipynb`` in JupyterLab) and run
``jupytext --sync notebooks/NAME.py``; then clear the outputs of the ``.ipynb`` before committing, e.g.
``jupytext --to ipynb notebooks/NAME.py`` (writes the notebook from the script, without outputs).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ("01_interlaced_partitions", "02_attention_explorer", "03_memory_vs_dense", "04_finetune_voc",
            "05_evaluate_pretrained", "06_efficient_attention", "07_quiz")
PAIRS = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
#: Notebooks that must teach with the full structure: a "You will learn" list, Summary, Exercises with hidden,
#: executed solution cells, Further reading. Any other notebook with an "## Exercises" section is checked too.
WITH_EXERCISES = ("01_interlaced_partitions", "02_attention_explorer", "03_memory_vs_dense", "04_finetune_voc",
                  "05_evaluate_pretrained")
EXERCISE_ITEM = re.compile(r"^\d+\. ", re.MULTILINE)
#: Notebooks whose main text asks for a guess before it measures, with their least number of "**Predict:**" moments.
WITH_PREDICT = {"01_interlaced_partitions": 2, "02_attention_explorer": 1, "03_memory_vs_dense": 2,
                "04_finetune_voc": 1, "06_efficient_attention": 2}
#: Notebooks whose solution cells hide their outputs too (collapsed in JupyterLab and on the site).
OUTPUTS_HIDDEN = ("01_interlaced_partitions", "02_attention_explorer", "03_memory_vs_dense", "04_finetune_voc",
                  "05_evaluate_pretrained", "06_efficient_attention", "07_quiz")
NOTATION_LINK = "](notation.md)"
QUIZ = "07_quiz"
QUESTION = re.compile(r"^### Q(\d+)\. ", re.MULTILINE)


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


def _heading(cell, title: str) -> bool:
    return cell.cell_type == "markdown" and re.search(rf"^## {title}\b", cell.source, re.MULTILINE) is not None


TEACHING = sorted(set(WITH_EXERCISES) | {name for name in PAIRS if any(
    _heading(cell, "Exercises") for cell in jupytext.read(NOTEBOOKS / f"{name}.ipynb").cells)})


@pytest.mark.parametrize("name", TEACHING)
def test_teaching_structure_with_hidden_executed_solutions(name: str) -> None:
    """Learn list first; then Summary, Exercises (3-6, each followed by its solution code cells: tagged
    ``solution``, collapsed with ``jupyter.source_hidden`` in the .ipynb *and* the .py, and run by the tests, i.e.
    not tagged to be skipped or to fail), and Further reading, in that order."""
    cells = jupytext.read(NOTEBOOKS / f"{name}.ipynb").cells
    script = jupytext.read(NOTEBOOKS / f"{name}.py", fmt="py:percent").cells
    assert "**You will learn**" in cells[0].source, f"{name}: the first cell must hold a 'You will learn' list"
    assert "**Prerequisites:**" in cells[0].source, f"{name}: the first cell must name the prerequisites"
    where = {}
    for title in ("Summary", "Exercises", "Further reading"):
        found = [index for index, cell in enumerate(cells) if _heading(cell, title)]
        assert len(found) == 1, f"{name}: expected one '## {title}' heading, found {len(found)}"
        where[title] = found[0]
    assert where["Summary"] <= where["Exercises"] < where["Further reading"], f"{name}: sections out of order"
    exercises, waiting = 0, False
    for index in range(where["Exercises"], where["Further reading"]):
        cell = cells[index]
        if cell.cell_type == "markdown":
            items = len(EXERCISE_ITEM.findall(cell.source))
            assert items <= 1, f"{name}: cell {index} holds {items} exercises; give each its own solution"
            assert not (waiting and items), f"{name}: the exercise before cell {index} has no solution cell"
            exercises, waiting = exercises + items, waiting or bool(items)
            continue
        assert exercises, f"{name}: code cell {index} comes before the first exercise and answers nothing"
        tags = cell.metadata.get("tags", [])
        assert "solution" in tags, f"{name}: code cell {index} in Exercises must be tagged 'solution'"
        assert not {"skip-execution", "raises-exception"} & set(tags), f"{name}: solution {index} must run"
        for kind, meta in (("ipynb", cell.metadata), ("py", script[index].metadata)):
            assert meta.get("jupyter", {}).get("source_hidden") is True, (
                f"{name}.{kind}: solution cell {index} must be collapsed (jupyter.source_hidden = true)")
        waiting = False
    assert not waiting, f"{name}: the last exercise has no solution cell"
    assert 3 <= exercises <= 6, f"{name}: {exercises} exercises, expected 3 to 6"


def _assigned_names(source: str) -> set[str]:
    return {target.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


@pytest.mark.parametrize("name", WITH_PREDICT)
def test_predict_moments_ask_first_then_check(name: str) -> None:
    """A "**Predict:**" markdown cell, then a code cell that only sets ``guess_*`` variables, then a cell that
    passes each of them to ``check_guess`` (which measures the answer and explains it); as many as WITH_PREDICT says."""
    cells = jupytext.read(NOTEBOOKS / f"{name}.ipynb").cells
    moments = [index for index, cell in enumerate(cells) if cell.cell_type == "markdown" and "**Predict:**" in
               cell.source]
    assert len(moments) >= WITH_PREDICT[name], f"{name}: {len(moments)} 'Predict:' moments, expected at least " \
                                               f"{WITH_PREDICT[name]}"
    for index in moments:
        guess, check = cells[index + 1], cells[index + 2]
        assert guess.cell_type == "code" and check.cell_type == "code", f"{name}: Predict at cell {index}"
        names = _assigned_names(guess.source)
        assert names and all(n.startswith("guess_") for n in names), (
            f"{name}: the cell after the Predict at {index} must only set guess_* variables, sets {sorted(names)}")
        values = [node.value for node in ast.walk(ast.parse(guess.source)) if isinstance(node, ast.Assign)]
        assert all(isinstance(value, ast.Constant) and value.value is None for value in values), (
            f"{name}: the guesses after the Predict at {index} must start as None (a pre-filled guess is no guess)")
        for variable in names:
            assert re.search(rf"check_guess\(\s*{variable}\b", check.source), (
                f"{name}: cell {index + 2} must check {variable} with check_guess(...)")


@pytest.mark.parametrize("name", OUTPUTS_HIDDEN)
def test_solution_outputs_are_hidden_too(name: str) -> None:
    """Solution and answer cells collapse their outputs as well as their code (``jupyter.outputs_hidden``), in the
    .ipynb and the .py, so after Run All an answer does not sit in view under its question."""
    notebook = jupytext.read(NOTEBOOKS / f"{name}.ipynb").cells
    script = jupytext.read(NOTEBOOKS / f"{name}.py", fmt="py:percent").cells
    answers = [index for index, cell in enumerate(notebook) if {"solution", "answer"} & set(
        cell.metadata.get("tags", []))]
    assert answers, f"{name}: no solution or answer cells"
    for index in answers:
        for kind, cell in (("ipynb", notebook[index]), ("py", script[index])):
            hidden = cell.metadata.get("jupyter", {})
            assert hidden.get("outputs_hidden") is True and hidden.get("source_hidden") is True, (
                f"{name}.{kind}: cell {index} must hide its source and outputs (jupyter.outputs_hidden)")


@pytest.mark.parametrize("name", PAIRS)
def test_every_notebook_links_the_notation_card(name: str) -> None:
    first = jupytext.read(NOTEBOOKS / f"{name}.ipynb").cells[0]
    assert NOTATION_LINK in first.source, f"{name}: the first cell must link the notation card ({NOTATION_LINK})"
    assert (NOTEBOOKS / "notation.md").is_file()


def test_quiz_has_at_least_eight_questions_each_answered_by_a_cell() -> None:
    cells = jupytext.read(NOTEBOOKS / f"{QUIZ}.ipynb").cells
    questions = [(index, int(QUESTION.search(cell.source).group(1))) for index, cell in enumerate(cells)
                 if cell.cell_type == "markdown" and QUESTION.search(cell.source)]
    assert len(questions) >= 8, f"{QUIZ}: {len(questions)} questions, expected at least 8"
    assert [number for _, number in questions] == list(range(1, len(questions) + 1)), f"{QUIZ}: numbering"
    parameters = _assigned_names(next(cell for cell in cells if cell.cell_type == "code").source)
    for index, number in questions:
        answer = cells[index + 1]
        assert answer.cell_type == "code" and "answer" in answer.metadata.get("tags", []), (
            f"{QUIZ}: question {number} must be followed by its answer cell (tagged 'answer')")
        assert f"answer_{number}" in parameters, f"{QUIZ}: no answer_{number} in the parameters cell"
        assert re.search(rf"check_guess\(\s*answer_{number}\b", answer.source), (
            f"{QUIZ}: the answer cell of question {number} must check answer_{number} with check_guess(...)")
