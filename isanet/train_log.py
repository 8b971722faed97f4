"""Reading a training log (``work_dir/log.jsonl``) and drawing its loss and mIoU curves.

The trainer writes one JSON object per iteration (``iter``, ``loss``, ``lr``, ``decode.loss_ce``, ...) and
adds ``mIoU``/``aAcc``/``mAcc`` to the iterations it evaluated at (``iter`` 0 is an evaluation before training).
These helpers take either the file or the records themselves, so a notebook can redraw the curves live from
the ``on_log`` callback's list while training runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a ``log.jsonl``, in order; a half-written last line (a run being killed) is skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training log {path}: no such file (the trainer writes WORK_DIR/log.jsonl)")
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "iter" in record:
            records.append(record)
    return records


def _records(log_or_path: str | os.PathLike | Sequence[dict]) -> list[dict]:
    return read_log(log_or_path) if isinstance(log_or_path, (str, os.PathLike)) else list(log_or_path)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing running mean: the curve's trend without hiding where it starts."""
    if window <= 1 or len(values) < window:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    head = cumulative[1:window] / np.arange(1, window)
    return np.concatenate([head, (cumulative[window:] - cumulative[:-window]) / window])


def plot_training_curves(log_or_path: str | os.PathLike | Sequence[dict], ax=None, smooth: int | None = None):
    """Loss (left axis; raw and running mean) and validation mIoU (right axis) against the iteration.

    ``log_or_path`` is a ``log.jsonl`` path or a list of records. Draws on ``ax`` (a new figure when None) and
    returns ``(loss_axis, miou_axis)``. ``smooth`` is the running-mean window (default: about 1/20 of the run).
    """
    import matplotlib.pyplot as plt

    records = _records(log_or_path)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    steps = [(r["iter"], r["loss"]) for r in records if r.get("loss") is not None]
    evals = [(r["iter"], r["mIoU"]) for r in records if r.get("mIoU") is not None]
    if steps:
        iters, losses = np.array(steps, dtype=float).T
        window = smooth if smooth is not None else max(len(losses) // 20, 1)
        ax.plot(iters, losses, color="tab:blue", alpha=0.3 if window > 1 else 1.0, lw=1, label="loss")
        if window > 1:
            ax.plot(iters, _smooth(losses, window), color="tab:blue", lw=2, label=f"loss (mean of {window})")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss", color="tab:blue")
    miou_ax = ax.twinx()
    if evals:
        iters, values = np.array(evals, dtype=float).T
        miou_ax.plot(iters, values, "o-", color="tab:orange", label="val mIoU")
    miou_ax.set_ylabel("validation mIoU (%)", color="tab:orange")
    handles = ax.get_legend_handles_labels()[0] + miou_ax.get_legend_handles_labels()[0]
    if handles:
        ax.legend(handles=handles, loc="center right")
    ax.set_title("training curves" if records else "training curves (no records yet)")
    return ax, miou_ax
