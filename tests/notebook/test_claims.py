"""Every numeric claim of the notebooks (:data:`isanet.notebook.claims.CLAIMS`) holds in its notebook's executed
output, and the check fails where it should: on a copy whose printed number no longer supports the phrase, and on
one whose text dropped the phrase."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from isanet.notebook.claims import CLAIMS, claim_problems, notebook_texts

pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.parametrize("name", sorted({claim.notebook for claim in CLAIMS}))
def test_every_claim_holds_in_its_executed_notebook(name: str) -> None:
    from isanet.notebook.site import executed_notebook

    markdown, printed = notebook_texts(executed_notebook(NOTEBOOKS / f"{name}.ipynb",
                                                        os.environ.get("ISANET_SITE_DIR"), 300))
    problems = [problem for claim in CLAIMS if claim.notebook == name
                if (problem := claim_problems(claim, markdown, printed))]
    assert not problems, problems


def test_a_broken_copy_fails_by_its_number_and_by_its_phrase() -> None:
    claim = next(claim for claim in CLAIMS if claim.notebook == "02_attention_explorer")
    markdown = "The random-weights lines are a real control (every lift within 10 % of 1)."
    assert claim_problems(claim, markdown, "random weights: largest |lift - 1| over the maps = 0.002") is None
    broken = claim_problems(claim, markdown, "random weights: largest |lift - 1| over the maps = 0.250")
    assert broken == ("02_attention_explorer: 'every lift within 10 % of 1' needs random weights lift every map by "
                      "less than 10 %, but the output printed 'largest |lift - 1| over the maps = 0.250'")
    assert "no printed line matches" in claim_problems(claim, markdown, "nothing measured")
    assert "is gone from the text" in claim_problems(claim, "The control.", "largest |lift - 1| over the maps = 0.0")
