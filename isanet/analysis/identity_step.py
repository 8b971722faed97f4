"""The identity step: an ISA model with one of its two steps' attention replaced by identity, to measure which
hops a trained model uses.

*Interlaced Sparse Self-Attention for Semantic Segmentation*, Huang et al., arXiv:1907.12273,
https://arxiv.org/abs/1907.12273. ISA's composition (long range, then short range) lets every pixel reach every
other in two hops, but a model learns only the hops its task needs. Replacing a step's attention by identity
(each pixel attends to itself alone: its context is its own value; the query, key, value and output projections
are kept, so only the mixing between positions is gone) and measuring again says whether the model uses that
step: a gradient says a step *could* matter, the ablation says it *does*.

It is state of the one kernel dispatch (:func:`isanet.models.attention.identity_steps`), so it holds for every
kernel (matmul, sdpa, flex), for attention capture (the step's weights are the identity matrix) and for a
compiled copy (``--optimize``: the compiled graph guards on the state and is recompiled). Only ISA heads have
the two steps; any other head is refused in one line that names it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

from isanet.models.attention import STEP_NAMES, StepName, identity_steps

#: The step names as the command line spells them.
STEP_OPTIONS = tuple(step.replace("_", "-") for step in STEP_NAMES)


def step_name(step: str) -> StepName:
    """``"long-range"`` / ``"long_range"`` -> ``"long_range"`` (and the same for the short range), or a clear error."""
    name = step.replace("-", "_")
    if name not in STEP_NAMES:
        raise ValueError(f"identity step {step!r}: use one of {', '.join(STEP_OPTIONS)}")
    return name


def check_isa(model: nn.Module) -> None:
    """Refuse, in one line, a model whose decode head has no ISA steps."""
    head = getattr(getattr(model, "config", None), "head", None)
    if head != "isa":
        raise ValueError(f"identity step: head {head!r} has no long-range and short-range step; only head 'isa' does")


@contextlib.contextmanager
def identity_step(model: nn.Module, step: str) -> Iterator[None]:
    """Inside, ``model`` (an ISA model) runs with ``step`` (``long-range`` or ``short-range``) attending each pixel
    to itself alone; everything else is unchanged."""
    check_isa(model)
    with identity_steps(step_name(step)):
        yield


def evaluate_identity_step(model: nn.Module, dataset, settings, step: str | None, **options) -> dict:
    """:func:`isanet.evaluation.evaluate.evaluate` of ``model`` on ``dataset`` with ``step`` replaced by identity
    (``None``: intact); ``options`` go to ``evaluate`` (precision, device, optimize, limit, ...)."""
    from isanet.evaluation.evaluate import evaluate  # here, so that the command line's choices load no evaluation

    if step is None:
        return evaluate(model, dataset, settings, **options)
    with identity_step(model, step):
        return evaluate(model, dataset, settings, **options)
