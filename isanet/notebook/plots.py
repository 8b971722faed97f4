"""Plotting: pictures back from normalised tensors, the query marker, predictions, per-class IoU, training
curves and the dense-vs-ISA benchmark plot.

Plotting functions only, with no pyplot state: each takes an optional ``matplotlib`` ``Axes`` (to compose
into a notebook figure) or makes its own ``Figure`` and returns it, so the same code serves notebooks, the
CLI (``isanet bench attention --plot``) and tests on a machine without a display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from isanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from isanet.engine.log import read_log
from isanet.evaluation.overlay import colorize
from isanet.io.atomic import atomic_path


def save_figure(figure: Figure, path: str | os.PathLike, **options) -> Path:
    """``figure`` saved to ``path`` (the suffix names the format; ``options`` go to ``savefig``) atomically and
    through the output guard: only a file the kit wrote earlier is replaced."""
    with atomic_path(path, suffix=Path(path).suffix) as temporary:  # the suffix tells matplotlib the format
        figure.savefig(temporary, **options)
    return Path(path)


def axes_grid(ax: Axes | None, ncols: int = 1, size: float = 4.0) -> tuple[Figure, list[Axes]]:
    if ax is not None:
        return ax.figure, [ax]
    figure = Figure(figsize=(size * ncols, size), layout="constrained")
    return figure, list(np.atleast_1d(figure.subplots(1, ncols)))


def to_display_image(image: torch.Tensor | np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """A normalised ``[1 x] 3 x H x W`` tensor back to an ``H x W x 3`` uint8 picture; arrays that are
    already ``H x W x 3`` pass through."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 4:
        array = array[0]
    if array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0) * np.asarray(std) + np.asarray(mean)  # 3 x H x W -> H x W x 3
    return np.clip(array, 0, 255).astype(np.uint8)


def mark_pixel(ax: Axes, y: int, x: int) -> None:
    ax.plot([x], [y], marker="*", ms=14, mec="black", mfc="white")


def plot_bench(rows: Sequence, path: str | Path | None = None) -> Figure:
    """Peak memory and time against feature size (log-log), one line per method and kernel, from
    :class:`isanet.analysis.attention_bench.BenchRow` objects or their dicts (the ``--json`` rows). Rows that ran out of
    memory are left off the lines and marked with an ``x`` on the size axis. Saved to ``path`` if given."""
    rows = [row if isinstance(row, dict) else row.to_dict() for row in rows]
    figure, (ax_mem, ax_time) = axes_grid(None, 2, size=4.5)
    series = sorted({(row["method"], row["kernel"]) for row in rows})
    for method, kernel in series:
        mine = sorted((r for r in rows if (r["method"], r["kernel"]) == (method, kernel)),
                      key=lambda r: r["height"] * r["width"])
        style = dict(marker="o", ls="-" if method == "isa" else "--", label=f"{method} ({kernel})")
        for ax, key, scale in ((ax_mem, "peak_memory_bytes", 2**-20), (ax_time, "time_ms", 1.0)):
            ok = [r for r in mine if r["status"] == "ok" and r[key]]
            line, = ax.plot([(r["height"] * r["width"]) ** 0.5 for r in ok], [r[key] * scale for r in ok],
                            **style)
            oom = [(r["height"] * r["width"]) ** 0.5 for r in mine if r["status"] != "ok"]
            if oom:
                ax.plot(oom, [ax.get_ylim()[1]] * len(oom), "x", color=line.get_color(), ms=10)
    sides = sorted({(r["height"] * r["width"]) ** 0.5 for r in rows})
    for ax, label in ((ax_mem, "peak memory (MiB)"), (ax_time, "time (ms)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sides, [f"{side:g}" for side in sides])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("feature map side (sqrt(h*w), pixels)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    device = rows[0]["device"] if rows else ""
    figure.suptitle(f"dense vs ISA attention, {device}" + (" (x: out of memory)" if any(
        r["status"] != "ok" for r in rows) else ""))
    if path is not None:
        save_figure(figure, path, dpi=120)
    return figure


def plot_predictions(rows: Sequence[dict], palette: Sequence[Sequence[int]], titles: Sequence[str] | None = None,
                     panel_size: float = 2.6) -> Figure:
    """One row per sample: the image, then each ``H x W`` class map of the row in the palette.

    ``rows`` are dicts ``{"image": H x W x 3, "maps": [label, prediction, ...]}``; ``titles`` name the columns
    after "image" (e.g. ``["label", "before", "after"]``).
    """
    columns = 1 + max(len(row["maps"]) for row in rows)
    height, width = rows[0]["image"].shape[:2]
    figure = Figure(figsize=(panel_size * columns, panel_size * height / width * len(rows) + 0.5),
                    layout="constrained")
    axes = np.atleast_2d(figure.subplots(len(rows), columns))
    for r, row in enumerate(rows):
        panels = [row["image"]] + [colorize(m, palette) for m in row["maps"]]
        names = ["image", *(titles or [f"map {i}" for i in range(len(row["maps"]))])]
        for c, ax in enumerate(axes[r]):
            if c < len(panels):
                ax.imshow(panels[c], interpolation="nearest")
                if r == 0:
                    ax.set_title(names[c], fontsize="medium")
            ax.set_xticks([])
            ax.set_yticks([])
    return figure


def plot_per_class_iou(result: dict, palette: Sequence[Sequence[int]] | None = None, title: str = "",
                       max_classes: int = 40, ax: Axes | None = None) -> Figure:
    """Horizontal bars of per-class IoU (``result["IoU"]``: name -> percent, NaN = class absent), coloured
    with the palette, mIoU as a dashed line. With many classes (ADE20K's 150) the ``max_classes`` present
    classes with the largest IoU are drawn."""
    names = list(result["IoU"])
    values = np.array([result["IoU"][name] for name in names], dtype=float)
    present = [i for i in range(len(names)) if not np.isnan(values[i])]
    absent = len(names) - len(present)
    if len(present) > max_classes:
        present = sorted(present, key=lambda i: -values[i])[:max_classes]
    if ax is None:
        figure = Figure(figsize=(7, 0.22 * max(len(present), 4) + 1.2), layout="constrained")
        ax = figure.subplots()
    colours = [np.asarray(palette[i]) / 255 if palette is not None and i < len(palette) else "tab:blue"
               for i in present]
    ax.barh(range(len(present)), values[present], color=colours, edgecolor="black", linewidth=0.4)
    ax.set_yticks(range(len(present)), [names[i] for i in present], fontsize="small")
    ax.invert_yaxis()
    ax.axvline(result["mIoU"], color="black", ls="--", label=f"mIoU {result['mIoU']:.2f}")
    ax.set_xlim(0, 100)
    ax.set_xlabel("IoU (%)")
    note = f" ({absent} classes absent from labels and predictions: left out)" if absent else ""
    ax.set_title((title + note).strip(), fontsize="medium")
    ax.legend(loc="lower right")
    return ax.figure


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

    records = read_log(log_or_path) if isinstance(log_or_path, (str, os.PathLike)) else list(log_or_path)
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


def plot_head_comparison(summary: dict[str, dict], ax=None, title: str = "") -> Figure:
    """Each head's mean mIoU over seeds as a bar, its seeds as dots, and the min-max range as an error bar
    (:func:`isanet.notebook.teaching.summarize` gives ``summary``): the spread is drawn as large as the gap."""
    figure, (axis,) = axes_grid(ax, size=6.0)
    heads = list(summary)
    means = np.array([summary[head]["mean"] for head in heads])
    low = means - np.array([min(summary[head]["mIoU"]) for head in heads])
    high = np.array([max(summary[head]["mIoU"]) for head in heads]) - means
    axis.bar(heads, means, color="#9ecae1", yerr=[low, high], capsize=6, ecolor="#333333")
    for index, head in enumerate(heads):
        values = summary[head]["mIoU"]
        axis.plot([index] * len(values), values, "o", color="#08519c", markersize=4)
    axis.set_ylabel("validation mIoU (bar: mean; dots: seeds; whiskers: min-max)")
    axis.set_ylim(0, 100)
    axis.set_title(title)
    return figure


def plot_run_curves(rows: Sequence[dict], ax=None, title: str = "") -> Figure:
    """Validation mIoU against iteration for reference-run rows (each with ``curve``, ``seed``, ``learnt``):
    runs that learnt in blue, stalled ones in red, so a plateau shows beside the climb it missed."""
    figure, (axis,) = axes_grid(ax, size=6.0)
    for row in rows:
        curve = row["curve"]
        learnt = row.get("learnt", True)
        axis.plot([point["iter"] for point in curve], [point["mIoU"] for point in curve], "-o", markersize=3,
                  color="#08519c" if learnt else "#cb181d", alpha=0.8 if learnt else 1.0,
                  label=f"seed {row['seed']} ({'learnt' if learnt else 'stalled'})")
    axis.set_xlabel("iteration")
    axis.set_ylabel("validation mIoU")
    axis.set_ylim(0, 100)
    axis.legend(fontsize="small")
    axis.set_title(title)
    return figure
