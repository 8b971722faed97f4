"""The site's pages hide what JupyterLab hides: a cell with ``jupyter.outputs_hidden`` (a solution, a quiz answer)
is rendered closed, its code and outputs inside one ``<details>``, never in view under its question. They name no
folder of the machine that built them, and the index says at its top how it was built."""

from __future__ import annotations

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbconvert")

from isanet.notebook.session import repo_root  # noqa: E402
from isanet.notebook.site import (  # noqa: E402
    HIDDEN_TAG,
    collapse_hidden_outputs,
    index_html,
    local_prefixes,
    notation_html,
    scrub_local_paths,
    to_html,
)


def _executed_notebook():
    question = nbformat.v4.new_markdown_cell("1. What is 6 x 7?")
    answer = nbformat.v4.new_code_cell("print(6 * 7)  # the_answer_code", metadata={
        "jupyter": {"outputs_hidden": True, "source_hidden": True}, "tags": ["solution"]})
    answer.outputs = [nbformat.v4.new_output("stream", name="stdout", text="forty-two <&>\n")]
    shown = nbformat.v4.new_code_cell("print('in view')")
    shown.outputs = [nbformat.v4.new_output("stream", name="stdout", text="in_view_output\n")]
    return nbformat.v4.new_notebook(cells=[question, answer, shown])


def test_a_hidden_output_cell_is_collapsed_with_its_code_and_the_others_are_not():
    nb = _executed_notebook()
    assert collapse_hidden_outputs(nb) == 1
    answer, shown = nb.cells[1], nb.cells[2]
    assert HIDDEN_TAG in answer.metadata["tags"] and "solution" in answer.metadata["tags"]
    (output,) = answer.outputs
    details = output["data"]["text/html"]
    assert details.startswith('<details class="isanet-hidden-output">') and details.endswith("</details>")
    assert "<pre>forty-two &lt;&amp;&gt;\n</pre>" in details and "the_answer_code" in details
    assert shown.outputs[0]["text"] == "in_view_output\n"


def test_the_page_shows_the_answer_only_inside_a_closed_details():
    nb = _executed_notebook()
    collapse_hidden_outputs(nb)
    page = to_html(nb, "quiz")
    before, inside = page.split('<details class="isanet-hidden-output">', 1)
    assert "forty-two" not in before and "the_answer_code" not in before  # not in view, input removed
    assert "forty-two" in inside.split("</details>", 1)[0]
    assert "<details open" not in page
    assert "in_view_output" in page


def test_the_notation_card_is_a_page_with_its_tables():
    card = (repo_root() / "notebooks" / "notation.md").read_text(encoding="utf-8")
    page = notation_html(card)
    assert "<table" in page and "Notation card" in page
    assert "glb_h, glb_w" in page and "down_factor = (loc_h, loc_w)" in page


def test_outputs_name_the_repository_relatively_and_the_temporary_folder_as_tmpdir():
    root, tmp = "/home/ann/isanet/", "/var/tmp/"
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=f"wrote {root}data/samples/x to {tmp}run-1/a.pth\n"),
        nbformat.v4.new_output("display_data", data={"text/plain": f"{root}b", "text/html": f"<b>{root}b</b>"}),
        nbformat.v4.new_output("error", ename="E", evalue="", traceback=[f"File {root}isanet/x.py"]),
        nbformat.v4.new_output("stream", name="stdout", text="nothing local\n"),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert scrub_local_paths(nb, {root: "", tmp: "$TMPDIR/"}) == 3
    stream, display, error, untouched = cell.outputs
    assert stream["text"] == "wrote data/samples/x to $TMPDIR/run-1/a.pth\n"
    assert display["data"] == {"text/plain": "b", "text/html": "<b>b</b>"}
    assert error["traceback"] == ["File isanet/x.py"] and untouched["text"] == "nothing local\n"
    assert f"{repo_root()}/" in local_prefixes() and local_prefixes()[f"{repo_root()}/"] == ""


def test_the_index_says_first_whether_it_was_built_in_quick_mode():
    for quick, said in ((True, "Built in quick mode"), (False, "Built with the notebooks' full settings")):
        body = index_html([("01_a.html", "01", "")], 1.0, quick).split("<body>", 1)[1]
        first_paragraph = body.split("<p", 1)[1].split("</p>", 1)[0]
        assert said in first_paragraph
