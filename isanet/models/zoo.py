"""The 16 published ISANet configurations of the OpenMMLab model zoo, and how to build each one.

The facts (data set, depth, crop, schedule, test mode, normalisation, published mIoU, weights URL and the
sha256 prefix that names each file) live in ``zoo.json`` beside this file, exactly as the OpenMMLab table and
configs give them; every entry is a plain dict with those fields. Names are the mmseg 1.x names; the legacy
0.x names (which the weight files carry) are accepted everywhere a name is.
"""

from __future__ import annotations

import copy
import difflib
import json
from functools import lru_cache
from pathlib import Path

from isanet.models.config import ISANetConfig
from isanet.models.segmentor import ISANet

ZOO_FILE = Path(__file__).with_name("zoo.json")
DATASET_SHORT_NAMES = {"Cityscapes": "cityscapes", "ADE20K": "ade20k", "Pascal VOC 2012 + Aug": "voc"}


@lru_cache(maxsize=1)
def _entries() -> tuple[dict, ...]:
    return tuple(json.loads(ZOO_FILE.read_text()))


def list_models() -> list[str]:
    """Every zoo name, in the order of the published table."""
    return [entry["name"] for entry in _entries()]


def get_entry(name: str) -> dict:
    """The zoo entry (a fresh copy) for a 1.x name or a legacy 0.x name; a clear error with suggestions."""
    for entry in _entries():
        if name in (entry["name"], entry["legacy_name"]):
            return copy.deepcopy(entry)
    known = list_models() + [entry["legacy_name"] for entry in _entries()]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else " Run `isanet zoo` to list them."
    raise KeyError(f"unknown ISANet zoo model {name!r}.{hint}")


def entries_with_classes(num_classes: int) -> list[str]:
    """Names of the zoo entries trained with ``num_classes`` classes (for 'which checkpoint fits' errors)."""
    return [entry["name"] for entry in _entries() if entry["num_classes"] == num_classes]


def model_config(name: str, num_classes: int | None = None, **overrides) -> ISANetConfig:
    """The :class:`ISANetConfig` of zoo entry ``name``; ``num_classes`` and ``overrides`` change its fields."""
    entry = get_entry(name)
    config = ISANetConfig(depth=entry["depth"], num_classes=entry["num_classes"],
                          align_corners=entry["align_corners"])
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    return config.replace(**overrides)


def build_model(name: str, num_classes: int | None = None, **overrides) -> ISANet:
    """An ``ISANet`` with the architecture of zoo entry ``name`` (randomly initialised).

    ``num_classes`` overrides the entry's classes (fine-tuning to another data set); other keyword arguments
    are :class:`ISANetConfig` fields (e.g. ``kernel="sdpa"`` or ``head="dense"``).
    """
    return ISANet(model_config(name, num_classes, **overrides))


def short_dataset_name(entry: dict) -> str:
    """``"cityscapes"``, ``"ade20k"`` or ``"voc"``: the key the data readers use."""
    return DATASET_SHORT_NAMES[entry["dataset"]]


def format_table(entries: list[dict] | None = None) -> str:
    """The zoo as an aligned text table (what ``isanet zoo`` prints)."""
    entries = list(entries if entries is not None else _entries())
    header = ("name", "dataset", "backbone", "crop", "iters", "test", "mIoU", "ms+flip", "sha256")
    rows = [header] + [(
        entry["name"], entry["dataset"], f"R-{entry['depth']}-D8", "x".join(map(str, entry["crop_size"])),
        f"{entry['iterations'] // 1000}k", entry["test_cfg"]["mode"], f"{entry['mIoU']:.2f}",
        f"{entry['mIoU_ms_flip']:.2f}", entry["sha256_prefix"]) for entry in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
