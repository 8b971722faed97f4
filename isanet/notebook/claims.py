"""The notebooks' numeric claims, each tied to the printed number that backs it.

A sentence such as "every lift within 10 % of 1" is true of one run's output; after a change to the code, the
data or the model it can silently become false while the notebook still runs. Each :class:`Claim` names the
notebook, a phrase of its prose, a pattern that finds the backing number in the notebook's printed output, and the
rule the number must satisfy for the phrase to stay true. :func:`claim_problems` checks one executed notebook
(``tests/notebook/test_claims.py`` runs it on every notebook, and on a deliberately broken copy).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    """``phrase`` (whitespace-insensitive) stands in ``notebook``'s markdown while ``rule`` holds for the numbers
    ``pattern``'s groups capture in its printed output (the first match)."""

    notebook: str
    phrase: str
    pattern: str
    rule: Callable[..., bool]
    says: str  # the rule in words, for the failure message


CLAIMS: tuple[Claim, ...] = (
    Claim("01_interlaced_partitions", "`allclose: True`", r"allclose: (True|False)", lambda value: value == "True",
          "the from-scratch ISA equals the module"),
    Claim("02_attention_explorer", "every lift within 10 % of 1",
          r"largest \|lift - 1\| over the maps = ([0-9.]+)", lambda value: float(value) < 0.1,
          "random weights lift every map by less than 10 %"),
    Claim("02_attention_explorer", "where the beacon is red the ablated model can still be right",
          r"beacon +red team: object pixels on the right team: intact \d+%, without long range (\d+)%, without short "
          r"range (\d+)%", lambda long, short: min(int(long), int(short)) >= 80,
          "the red picture's objects at least 80 % right without either step"),
    Claim("03_memory_vs_dense", "training step needs *more* memory than dense's at every size printed",
          r"ISA's training step needs ([0-9.]+)x to ([0-9.]+)x dense's memory",
          lambda low, high: float(low) > 1, "the smallest factor is above 1"),
    Claim("03_memory_vs_dense", "brings the dense/ISA memory ratio close to 1x",
          r"sdpa memory dense/ISA over all sizes: ([0-9.]+)x to ([0-9.]+)x",
          lambda low, high: float(low) >= 0.67 and float(high) <= 1.5, "the range lies within 0.67x to 1.5x"),
    Claim("04_finetune_voc", "scores a little above what one guessed team for every object would",
          r"would score at most ([0-9.]+) mIoU .*; none scores ([0-9.]+) to ([0-9.]+)",
          lambda one_team, low, high: 0 < float(low) - float(one_team) < 5,
          "every none seed above the one-team score, by less than 5 points"),
    Claim("04_finetune_voc", "the short-range step costs nearly as much as the long-range one",
          r"context: a model that learnt loses ([0-9.]+) to ([0-9.]+) mIoU points without its long-range step, "
          r"([0-9.]+) to ([0-9.]+) without its short-range step",
          lambda long_low, long_high, short_low, short_high: float(short_low) >= 0.8 * float(long_low),
          "the smallest short-range loss at least 0.8 of the smallest long-range loss"),
    Claim("04_finetune_voc", "puts the stalled seed's lift inside the range of the seeds that learnt",
          r"long-range cue lift of the seeds that learnt: ([0-9.]+) to ([0-9.]+); of the stalled: ([0-9.]+)",
          lambda low, high, stalled: float(low) <= float(stalled) <= float(high),
          "the stalled seed's lift within the learnt seeds' range"),
    Claim("04_finetune_voc", "its FLOPs are about dense's and its training peak is above dense's",
          r"ISA / dense: FLOPs ([0-9.]+), inference peak [0-9.]+, training peak ([0-9.]+)",
          lambda flops, training: 0.8 <= float(flops) <= 1.2 and float(training) > 1,
          "a FLOP ratio within 0.8-1.2 and a training-peak ratio above 1"),
    Claim("06_efficient_attention", "equal that masked formula to float64 rounding",
          r"gap to the masked formula: ([0-9.e+-]+)", lambda gap: float(gap) < 1e-12, "the gap is below 1e-12"),
    Claim("07_quiz", "An untrained row has bright spots too", r"the largest weight in a row is up to ([0-9.]+)x",
          lambda peak: float(peak) > 1.5, "an untrained row's peak is above 1.5x the uniform weight"),
)


def _words(text: str) -> str:
    return " ".join(text.split())


def notebook_texts(nb) -> tuple[str, str]:
    """An executed notebook's markdown and its printed output (streams and plain text), each as one string."""
    markdown = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    printed = "\n".join(output.get("text", "") or output.get("data", {}).get("text/plain", "")
                        for cell in nb.cells if cell.cell_type == "code" for output in cell.get("outputs", []))
    return markdown, printed


def claim_problems(claim: Claim, markdown: str, printed: str) -> str | None:
    """Why ``claim`` does not hold in a notebook with this ``markdown`` and ``printed`` output (None: it holds)."""
    if _words(claim.phrase) not in _words(markdown):
        return f"{claim.notebook}: the phrase {claim.phrase!r} is gone from the text (update or drop its claim)"
    match = re.search(claim.pattern, printed)
    if match is None:
        return f"{claim.notebook}: no printed line matches {claim.pattern!r}, which backs {claim.phrase!r}"
    if not claim.rule(*match.groups()):
        return (f"{claim.notebook}: {claim.phrase!r} needs {claim.says}, but the output printed "
                f"{match.group(0)!r}")
    return None
