"""check_guess: a guess against the measured answer, with the reason, whatever the guess."""

from __future__ import annotations

from isanet.notebook.quiz import check_guess


def test_no_guess_shows_the_answer_and_why():
    assert check_guess(None, 0.25, "one block of four") == "(no guess set) the answer is 0.25.\nwhy: one block of four"


def test_numbers_match_within_the_relative_tolerance_and_strings_ignoring_case():
    assert check_guess(0.26, 0.25, "w", tolerance=0.05).startswith("your guess 0.26: right")
    assert check_guess(0.3, 0.25, "w", tolerance=0.05).startswith("your guess 0.3: not quite, the answer is 0.25.")
    assert check_guess(0.0, 0, "w").startswith("your guess 0.0: right")
    assert check_guess(" False", "false", "w").startswith("your guess ' False': right")
    assert check_guess(True, 1, "w").startswith("your guess True: right")  # equality, not the tolerance path
    assert check_guess("window", "isa", "w").startswith("your guess 'window': not quite")
