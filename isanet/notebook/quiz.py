"""The notebooks' "Predict:" moments and quiz questions: the learner writes a guess into a variable before running
the cell that measures the answer; :func:`check_guess` compares the two and says why, so a wrong guess meets its
explanation right away (a guess left as ``None``, as under the test runner, just shows the answer)."""

from __future__ import annotations

import math
from typing import Any


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
