"""The notebooks' "Predict:" moments and quiz questions: the learner writes a guess into a variable before running
the cell that measures the answer; :func:`check_guess` compares the two and says why, so a wrong guess meets its
explanation right away (a guess left as ``None``, as under the test runner, just shows the answer).

A true-or-false question takes its answer from the measurement (:func:`verdict`), never from a constant, and a
quiz mixes true and false statements: :func:`constant_answer_scores` says what answering "true" (or "false")
everywhere would score, which the tests keep below full marks (notebook 07's answers are read from its output)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

#: What :func:`check_guess` prints of the answer; the tests read a quiz's answers from it.
ANSWER = re.compile(r"the answer is '(true|false)'\.")


def _matches(guess: Any, answer: Any, tolerance: float) -> bool:
    """Numbers within ``tolerance`` (relative), anything else by equality (strings ignoring case and spaces)."""
    if isinstance(guess, (int, float)) and isinstance(answer, (int, float)) and not isinstance(guess, bool):
        return math.isclose(guess, answer, rel_tol=tolerance, abs_tol=tolerance if answer == 0 else 0.0)
    if isinstance(guess, str) and isinstance(answer, str):
        return guess.strip().lower() == answer.strip().lower()
    return guess == answer


def check_guess(guess: Any, answer: Any, why: str, tolerance: float = 0.05) -> str:
    """One paragraph: the guess against the measured ``answer`` (numbers agree within ``tolerance``, relative),
    then ``why``. Print it in the cell after the guess."""
    if guess is None:
        verdict = f"(no guess set) the answer is {answer!r}."
    elif _matches(guess, answer, tolerance):
        verdict = f"your guess {guess!r}: right, the answer is {answer!r}."
    else:
        verdict = f"your guess {guess!r}: not quite, the answer is {answer!r}."
    return f"{verdict}\nwhy: {why}"


def verdict(statement_holds: bool) -> str:
    """A true-or-false question's answer, from what the cell measured: ``"true"`` when the statement holds."""
    return "true" if statement_holds else "false"


def quiz_answers(outputs: Iterable[str]) -> list[str]:
    """The true-or-false answers :func:`check_guess` printed in ``outputs`` (a quiz's cell outputs), in order."""
    return [match.group(1) for text in outputs for match in ANSWER.finditer(text)]


def constant_answer_scores(answers: list[str]) -> dict[str, int]:
    """How many of ``answers`` a learner who answers "true" everywhere, or "false" everywhere, gets right."""
    return {constant: sum(answer == constant for answer in answers) for constant in ("true", "false")}


def constant_answer_problem(answers: list[str], least_share: float = 1 / 3) -> str | None:
    """Why a constant answer would do too well on a quiz with ``answers`` (None when it would not): each of
    "true" and "false" must be the answer to at least ``least_share`` of the questions."""
    if not answers:
        return "the quiz printed no true-or-false answer"
    scores = constant_answer_scores(answers)
    short = [constant for constant, right in scores.items() if right < least_share * len(answers)]
    if short:
        return (f"answering {'false' if short[0] == 'true' else 'true'} everywhere scores "
                f"{len(answers) - scores[short[0]]} of {len(answers)}: fewer than {least_share:.0%} of the answers "
                f"are {short[0]!r}")
    return None
