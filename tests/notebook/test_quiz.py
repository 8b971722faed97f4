"""check_guess: a guess against the measured answer, with the reason, whatever the guess; a quiz whose answers a
constant guess would mostly get right is caught (notebook 07's own answers, read from its executed output, and a
deliberately broken all-"false" copy of them)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from isanet.notebook.quiz import (
    check_guess,
    constant_answer_problem,
    constant_answer_scores,
    quiz_answers,
    verdict,
)

QUIZ = Path(__file__).resolve().parents[2] / "notebooks" / "07_quiz.ipynb"


def test_no_guess_shows_the_answer_and_why():
    assert check_guess(None, 0.25, "one block of four") == "(no guess set) the answer is 0.25.\nwhy: one block of four"


def test_numbers_match_within_the_relative_tolerance_and_strings_ignoring_case():
    assert check_guess(0.26, 0.25, "w", tolerance=0.05).startswith("your guess 0.26: right")
    assert check_guess(0.3, 0.25, "w", tolerance=0.05).startswith("your guess 0.3: not quite, the answer is 0.25.")
    assert check_guess(0.0, 0, "w").startswith("your guess 0.0: right")
    assert check_guess(" False", "false", "w").startswith("your guess ' False': right")
    assert check_guess(True, 1, "w").startswith("your guess True: right")  # equality, not the tolerance path
    assert check_guess("window", "isa", "w").startswith("your guess 'window': not quite")


def test_a_verdict_is_the_measured_truth_and_the_printed_answers_are_read_back():
    assert (verdict(True), verdict(False)) == ("true", "false")
    printed = [check_guess(None, verdict(2 > 1), "w"), "noise", check_guess("true", verdict(1 > 2), "w")]
    assert quiz_answers(printed) == ["true", "false"]
    assert constant_answer_scores(["true", "false", "false"]) == {"true": 1, "false": 2}


def test_a_quiz_a_constant_answer_would_pass_is_caught_and_a_mixed_one_is_not():
    broken = ["false"] * 9  # notebook 07 before this check: every answer "false"
    assert constant_answer_problem(broken) == ("answering false everywhere scores 9 of 9: fewer than 33% of the "
                                               "answers are 'true'")
    assert "scores 8 of 9" in constant_answer_problem(["true"] + ["false"] * 8)
    assert constant_answer_problem(["true"] * 3 + ["false"] * 6) is None
    assert constant_answer_problem([]) == "the quiz printed no true-or-false answer"


def test_notebook_07_mixes_true_and_false_answers_each_derived_from_its_measurement():
    nbformat = pytest.importorskip("nbformat")
    from isanet.notebook.site import executed_notebook

    source = QUIZ.with_suffix(".py").read_text(encoding="utf-8")
    assert not re.search(r"check_guess\(\s*answer_\d+,\s*[\"']", source), "an answer must come from verdict(...)"
    nb = executed_notebook(QUIZ, os.environ.get("ISANET_SITE_DIR"), 300)
    outputs = [output.get("text", "") for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    answers = quiz_answers(outputs)
    assert len(answers) == len(re.findall(r"^# ### Q\d+\. ", source, flags=re.MULTILINE)) >= 8
    assert constant_answer_problem(answers) is None, constant_answer_problem(answers)
    assert nbformat  # the executed copy is an nbformat notebook
