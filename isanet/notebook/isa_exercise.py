"""Notebook 01's fill-in exercise: the learner writes ISA's reshaping steps; :func:`check_steps` says which is wrong.

ISA is two dense attentions between regroupings (:func:`isanet.models.isa.interlaced`): pad, regroup into
long-range groups, attend, regroup back, cut into blocks, attend, put the blocks back, crop. The attentions are
the package's blocks; the learner writes the six regrouping steps as functions of these signatures
(``P`` = ``down``, one square block side)::

    pad(x, down)                            n x c x h x w    -> n x c x H x W (H, W multiples of P, centred)
    to_groups(padded, down)                 n x c x H x W    -> (n*P*P) x c x H/P x W/P  (offset-major groups)
    from_groups(groups, n, down)            the inverse of to_groups
    to_blocks(padded, down)                 n x c x H x W    -> (n*H/P*W/P) x c x P x P  (row-major blocks)
    from_blocks(blocks, n, glb_h, glb_w)    the inverse of to_blocks
    crop(padded, height, width)             n x c x H x W    -> n x c x height x width  (the centre)

Each is checked on its own, fed the package's correct input, against the package's own regroupings
(:func:`~isanet.models.isa.group_long_range`, :func:`~isanet.models.isa.long_to_short_range`,
:func:`~isanet.models.isa.ungroup_short_range`), on a map that the blocks do not divide (so the padding and the
crop matter). A step that returns None is "not written yet"; one that raises, or returns another shape or other
values, is wrong, and the report says how.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from isanet.models.isa import Partition, group_long_range, long_to_short_range, ungroup_short_range

STEPS = ("pad", "to_groups", "from_groups", "to_blocks", "from_blocks", "crop")


@dataclass(frozen=True)
class StepCheck:
    """One step's verdict: ``status`` is "right", "wrong" or "not written yet"; ``detail`` says how it is wrong."""

    step: str
    status: str
    detail: str = ""

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{STEPS.index(self.step) + 1}. {self.step}: {self.status}{detail}"


def _verdict(step: str, call: Callable[[], torch.Tensor | None], expected: torch.Tensor) -> StepCheck:
    try:
        got = call()
    except Exception as error:  # a learner's code may raise anything: the report names it
        return StepCheck(step, "wrong", f"raised {type(error).__name__}: {error}")
    if got is None:
        return StepCheck(step, "not written yet")
    if tuple(got.shape) != tuple(expected.shape):
        return StepCheck(step, "wrong", f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
    if not torch.equal(got, expected):
        wrong = int((got != expected).sum())
        return StepCheck(step, "wrong", f"right shape, but {wrong} of {expected.numel()} values are elsewhere")
    return StepCheck(step, "right")


def check_steps(steps: Mapping[str, Callable], height: int = 13, width: int = 18, down: int = 4,
                channels: int = 3, batch: int = 2) -> list[StepCheck]:
    """Each of the learner's ``steps`` (named as :data:`STEPS`) on a ``batch x channels x height x width`` map of
    distinct values, against the package's regroupings with ``down x down`` blocks."""
    p = Partition(height, width, down, down)
    x = torch.arange(1, batch * channels * height * width + 1, dtype=torch.float64)  # distinct values, none 0
    x = x.view(batch, channels, height, width)
    padded = F.pad(x, p.padding)  # n x c x Hp x Wp, zeros around
    padded = padded + (padded == 0) * -torch.arange(padded.numel(), dtype=torch.float64).view(padded.shape)
    # ^ distinct values in the padding too, so a misplaced padded pixel is seen; x's own values are unchanged
    groups = group_long_range(padded, p).contiguous()  # (n*P*P) x c x glb_h x glb_w
    blocks = long_to_short_range(group_long_range(padded, p), p).contiguous()  # (n*glb_h*glb_w) x c x P x P
    expected_pad = F.pad(x, p.padding)
    checks = {
        "pad": (lambda: steps["pad"](x, down), expected_pad),
        "to_groups": (lambda: steps["to_groups"](padded, down), groups),
        "from_groups": (lambda: steps["from_groups"](groups, batch, down), padded),
        "to_blocks": (lambda: steps["to_blocks"](padded, down), blocks),
        "from_blocks": (lambda: steps["from_blocks"](blocks, batch, p.glb_h, p.glb_w), ungroup_short_range(blocks, p)),
        "crop": (lambda: steps["crop"](padded, height, width),
                 padded[:, :, p.pad_top:p.pad_top + height, p.pad_left:p.pad_left + width]),
    }
    missing = [name for name in STEPS if name not in steps]
    if missing:
        raise KeyError(f"steps: give a function for every step of {STEPS}; missing {missing}")
    return [_verdict(name, *checks[name]) for name in STEPS]


def steps_report(steps: Mapping[str, Callable], **sizes) -> str:
    """:func:`check_steps` as lines for a notebook, with the first step to fix (or that all six are right)."""
    checks = check_steps(steps, **sizes)
    first = next((check for check in checks if check.status != "right"), None)
    last = ("all six steps right: put together with the two attentions, they are ISA" if first is None
            else f"fix step {STEPS.index(first.step) + 1} ({first.step}) first")
    return "\n".join([*map(str, checks), last])
