"""reveal: a guess against the measured answer, with the reason, whatever the guess."""

from __future__ import annotations

from isanet.notebook.predict import reveal


def test_no_guess_shows_the_answer_and_why():
    assert reveal(None, 0.25, "one block of four") == "(no guess set) the answer is 0.25.\nwhy: one block of four"


def test_numbers_match_within_the_relative_tolerance_and_strings_ignoring_case():
    assert reveal(0.26, 0.25, "w", tolerance=0.05).startswith("your guess 0.26: right")
    assert reveal(0.3, 0.25, "w", tolerance=0.05).startswith("your guess 0.3: not quite, the answer is 0.25.")
    assert reveal(0.0, 0, "w").startswith("your guess 0.0: right")
    assert reveal(" False", "false", "w").startswith("your guess ' False': right")
    assert reveal(True, 1, "w").startswith("your guess True: right")  # equality, not the tolerance path
    assert reveal("window", "isa", "w").startswith("your guess 'window': not quite")
