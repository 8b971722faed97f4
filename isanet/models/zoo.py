"""The 16 published ISANet configurations of the OpenMMLab model zoo, and how to build each one.

The facts (data set, depth, crop, schedule, test mode, normalisation, published mIoU, weights URL and the
sha256 prefix that names each file) live in ``zoo.json`` beside this file, exactly as the OpenMMLab table and
configs give them. Each record is parsed and checked once, here, into a frozen :class:`ZooEntry` with typed
parts: ``model`` (what :func:`build_model` needs), ``train`` (the recipe) and ``test`` (:class:`TestSettings`,
what decides an evaluated number), so no other module digs through mmseg's config dicts.
Names are the mmseg 1.x names; the legacy 0.x names (which the weight files carry) are accepted everywhere a
name is.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from isanet.models.config import ISANetConfig
from isanet.models.segmentor import ISANet
from isanet.text_table import text_table

ZOO_FILE = Path(__file__).with_name("zoo.json")
DATASET_SHORT_NAMES = {"Cityscapes": "cityscapes", "ADE20K": "ade20k", "Pascal VOC 2012 + Aug": "voc"}
TTA_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # img_ratios of every mmseg 1.x dataset config's tta_pipeline
TEST_MODES = ("whole", "slide")


def check_windows(crop_size: tuple[int, int], stride: tuple[int, int]) -> None:
    """Refuse a sliding-window grid that leaves pixels unpredicted (NaN logits) or has no windows at all."""
    if min(*crop_size, *stride) < 1:
        raise ValueError(f"crop_size and stride must be positive, got {crop_size} and {stride}")
    if stride[0] > crop_size[0] or stride[1] > crop_size[1]:
        raise ValueError(f"stride {tuple(stride)} is larger than crop_size {tuple(crop_size)}: the pixels between "
                         "windows would be predicted by none (NaN logits); use a stride at most the crop size")


def window_grid(height: int, width: int, crop_size: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int]:
    """Rows and columns of mmseg's sliding-window grid over an ``height x width`` input (the windows checked):
    what slide inference runs and what the memory estimate counts."""
    check_windows(crop_size, stride)
    (crop_h, crop_w), (stride_h, stride_w) = crop_size, stride
    return (max(height - crop_h + stride_h - 1, 0) // stride_h + 1,
            max(width - crop_w + stride_w - 1, 0) // stride_w + 1)


def _pair(value) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


@dataclass(frozen=True)
class TestSettings:
    """What decides an evaluated number: test mode and windows, test scale, normalisation, resize corners and
    the TTA ratios. Checked when made (and when :meth:`replace` makes another), so a setting that cannot give a
    meaningful number is refused before any image is predicted (the scale's bound, a limit of the layer above,
    by the :class:`~isanet.evaluation.inference.Predictor`)."""

    __test__ = False  # a settings record, not a pytest test class

    mode: str
    scale: tuple[int, int]  # mmseg's keep-ratio Resize scale: (long side bound, short side bound)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    align_corners: bool
    crop_size: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    ratios: tuple[float, ...] = TTA_RATIOS  # multi-scale + flip: Resize(scale_factor=ratio) of the loaded image

    def __post_init__(self) -> None:
        for name in ("scale", "crop_size", "stride"):  # lists (JSON, argparse) as tuples, so settings compare
            object.__setattr__(self, name, _pair(getattr(self, name)))
        for name in ("mean", "std", "ratios"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.mode not in TEST_MODES:
            raise ValueError(f"mode must be 'whole' or 'slide', got {self.mode!r}")
        if self.mode == "slide":
            if self.crop_size is None or self.stride is None:
                raise ValueError("mode 'slide' needs a crop size and stride, and these settings have none (the "
                                 "zoo entry tests whole images): use mode 'whole', or a slide-mode (Cityscapes) "
                                 "entry")
            check_windows(self.crop_size, self.stride)
        if not self.ratios or min(self.ratios) <= 0:
            raise ValueError(f"TTA ratios must be positive, got {self.ratios}")

    def replace(self, **overrides) -> TestSettings:
        """These settings with ``overrides`` (fields of this class), checked again."""
        return replace(self, **overrides)

    def override(self, mode: str | None = None, scale: tuple[int, int] | None = None) -> TestSettings:
        """These settings with a user's test mode and scale where given (None keeps the entry's), checked again:
        what ``--mode`` and ``--scale`` change."""
        return self.replace(mode=mode or self.mode, scale=scale or self.scale)


@dataclass(frozen=True)
class ModelSettings:
    """What :func:`build_model` needs from an entry."""

    depth: int
    num_classes: int
    align_corners: bool

    def config(self) -> ISANetConfig:
        return ISANetConfig(depth=self.depth, num_classes=self.num_classes, align_corners=self.align_corners)


@dataclass(frozen=True)
class TrainRecipe:
    """The published training recipe: schedule, SGD + poly learning rate, and the augmentation pipeline."""

    iterations: int
    crop_size: tuple[int, int]
    batch_size_per_gpu: int
    gpus: int
    lr: float
    momentum: float
    weight_decay: float
    eta_min: float  # PolyLR's floor
    power: float  # PolyLR's exponent
    resize_scale: tuple[int, int]  # RandomResize's scale, multiplied by a ratio drawn from ratio_range
    ratio_range: tuple[float, float]
    cat_max_ratio: float  # RandomCrop: re-draw a crop where one class covers more than this share
    flip_prob: float
    pad_before_normalize: bool  # the pipeline pads to the crop (VOC) before the data preprocessor normalises


@dataclass(frozen=True)
class ZooEntry:
    """One published configuration: its names, data set, typed parts and published figures.

    :meth:`to_dict` gives the record as ``zoo.json`` holds it (what ``isanet zoo --show`` prints)."""

    name: str
    legacy_name: str
    dataset: str  # the table's data set name, e.g. "Cityscapes" (see short_dataset_name)
    model: ModelSettings
    train: TrainRecipe
    test: TestSettings
    mIoU: float  # the published table's spelling
    mIoU_ms_flip: float
    weights_url: str
    sha256_prefix: str
    record: str = field(repr=False, compare=False)  # the zoo.json record as JSON text (immutable), for to_dict

    def to_dict(self) -> dict:
        """The published record (a fresh dict, mmseg's config fields included) exactly as ``zoo.json`` has it."""
        return json.loads(self.record)


def _step(pipeline: list[dict], kind: str) -> dict | None:
    """The first step of type ``kind`` in an mmseg config pipeline (a list of dicts), or None."""
    return next((step for step in pipeline if step["type"] == kind), None)


def _parse(record: dict) -> ZooEntry:
    """The typed entry of one zoo.json record, its internal agreements checked (the crop in the table, the
    pipeline and the data preprocessor; the schedule's end and the iterations)."""
    train, test_cfg, preprocessor = record["train_pipeline"], record["test_cfg"], record["data_preprocessor"]
    resize, crop, flip = (_step(train, kind) for kind in ("RandomResize", "RandomCrop", "RandomFlip"))
    (schedule,), optimizer = record["param_scheduler"], record["optimizer"]
    if not tuple(record["crop_size"]) == tuple(crop["crop_size"]) == tuple(preprocessor["size"]):
        raise ValueError(f"zoo.json {record['name']}: crop_size, RandomCrop and data_preprocessor disagree")
    if schedule["end"] != record["iterations"]:
        raise ValueError(f"zoo.json {record['name']}: the PolyLR schedule ends at {schedule['end']}, not at "
                         f"iteration {record['iterations']}")
    tta = _step(record["tta_pipeline"], "TestTimeAug")
    test = TestSettings(
        mode=test_cfg["mode"], scale=_step(record["test_pipeline"], "Resize")["scale"],
        mean=preprocessor["mean"], std=preprocessor["std"], align_corners=record["align_corners"],
        crop_size=test_cfg.get("crop_size"), stride=test_cfg.get("stride"),
        ratios=[step["scale_factor"] for step in tta["transforms"][0]] if tta else TTA_RATIOS)
    recipe = TrainRecipe(
        iterations=record["iterations"], crop_size=_pair(record["crop_size"]),
        batch_size_per_gpu=record["batch_size_per_gpu"], gpus=record["gpus"], lr=optimizer["lr"],
        momentum=optimizer["momentum"], weight_decay=optimizer["weight_decay"], eta_min=schedule["eta_min"],
        power=schedule["power"], resize_scale=_pair(resize["scale"]), ratio_range=tuple(resize["ratio_range"]),
        cat_max_ratio=crop.get("cat_max_ratio", 1.0), flip_prob=flip["prob"],
        pad_before_normalize=_step(train, "Pad") is not None)
    return ZooEntry(
        name=record["name"], legacy_name=record["legacy_name"], dataset=record["dataset"],
        model=ModelSettings(record["depth"], record["num_classes"], record["align_corners"]), train=recipe,
        test=test, mIoU=record["mIoU"], mIoU_ms_flip=record["mIoU_ms_flip"], weights_url=record["weights_url"],
        sha256_prefix=record["sha256_prefix"], record=json.dumps(record))


@lru_cache(maxsize=1)
def entries() -> tuple[ZooEntry, ...]:
    """Every zoo entry, parsed once, in the order of the published table."""
    return tuple(_parse(record) for record in json.loads(ZOO_FILE.read_text()))


def list_models() -> list[str]:
    """Every zoo name, in the order of the published table."""
    return [entry.name for entry in entries()]


def get_entry(name: str) -> ZooEntry:
    """The zoo entry for a 1.x name or a legacy 0.x name; a clear error with suggestions."""
    for entry in entries():
        if name in (entry.name, entry.legacy_name):
            return entry
    known = list_models() + [entry.legacy_name for entry in entries()]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else " Run `isanet zoo` to list them."
    raise KeyError(f"unknown ISANet zoo model {name!r}.{hint}")


def entries_with_classes(num_classes: int) -> list[str]:
    """Names of the zoo entries trained with ``num_classes`` classes (for 'which checkpoint fits' errors)."""
    return [entry.name for entry in entries() if entry.model.num_classes == num_classes]


def model_config(name: str, num_classes: int | None = None, **overrides) -> ISANetConfig:
    """The :class:`ISANetConfig` of zoo entry ``name``; ``num_classes`` and ``overrides`` change its fields."""
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    return get_entry(name).model.config().replace(**overrides)


def build_model(name: str, num_classes: int | None = None, **overrides) -> ISANet:
    """An ``ISANet`` with the architecture of zoo entry ``name`` (randomly initialised).

    ``num_classes`` overrides the entry's classes (fine-tuning to another data set); other keyword arguments
    are :class:`ISANetConfig` fields (e.g. ``kernel="sdpa"`` or ``head="dense"``).
    """
    return ISANet(model_config(name, num_classes, **overrides))


def short_dataset_name(entry: ZooEntry) -> str:
    """``"cityscapes"``, ``"ade20k"`` or ``"voc"``: the key the data readers use."""
    return DATASET_SHORT_NAMES[entry.dataset]


def format_table(shown: list[ZooEntry] | None = None) -> str:
    """The zoo as an aligned text table (what ``isanet zoo`` prints)."""
    shown = list(shown if shown is not None else entries())
    header = ("name", "dataset", "backbone", "crop", "iters", "test", "mIoU", "ms+flip", "sha256")
    rows = [header] + [(
        entry.name, entry.dataset, f"R-{entry.model.depth}-D8", "x".join(map(str, entry.train.crop_size)),
        f"{entry.train.iterations // 1000}k", entry.test.mode, f"{entry.mIoU:.2f}", f"{entry.mIoU_ms_flip:.2f}",
        entry.sha256_prefix) for entry in shown]
    return text_table(rows)
