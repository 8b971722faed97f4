"""``TrainConfig``: what to train, and how a run's settings are resolved and checked before any work.

:class:`TrainConfig` leaves optional settings as ``None``; :func:`resolve_config` fills them from the zoo entry
(a fresh run) or from the checkpoint being resumed, so ``resume`` needs no repeated settings and refuses
ones that would make the continued run a different run.

Errors name the field (``TrainConfig.iters``), which is what a Python caller wrote; ``isanet train`` says its
own option instead (:data:`isanet.cli.train.OPTIONS`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from isanet.engine.recipes import get_recipe
from isanet.limits import MAX_IMAGE_SIDE, MAX_LR
from isanet.models.backbone import OUTPUT_STRIDE
from isanet.models.zoo import ZooEntry
from isanet.runtime import Precision

DEFAULT_MODEL = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"


class TrainError(ValueError):
    """Bad trainer input (a work folder, a checkpoint, a setting), in one line that names it."""


@dataclass
class TrainConfig:
    """What to train. ``None`` means: the zoo entry's value for a fresh run, the checkpoint's on ``resume``.

    The recipe fields (``iters`` ... ``val_scale``) default to the zoo entry of ``name``; ``model_overrides``
    go to :func:`isanet.build_model` (a tiny R-18 for notebooks and tests); ``resize_scale`` and ``val_scale``
    are the ``RandomResize`` and test ``Resize`` boxes (shrink them with the crop for small images);
    ``init`` is the starting weights (zoo or ImageNet-backbone checkpoint); ``stop_after`` ends this run after
    that iteration as if it were killed there (notebooks training in chunks, the resume test);
    ``avg_non_ignore`` switches to mmseg's optional CE averaging over labelled pixels only; ``dataset`` is the
    reader ("voc", "cityscapes", "ade20k", "folder"; None: "folder" when ``data_root`` holds that layout, else
    the entry's), and with a folder data set the model gets its ``classes.txt`` classes (``init`` then keeps
    everything but the re-initialised classifier); ``skip_bad`` leaves bad folder images out instead of stopping.
    """

    data_root: str | Path  # the data set's folder (a VOC/Cityscapes/ADE20K tree, or your own folder data set)
    work_dir: str | Path  # where log.jsonl, iter_N.pth and latest.pth go (locked while a run owns it)
    name: str = DEFAULT_MODEL  # zoo entry whose architecture and recipe are used
    recipe: str | None = None  # a named recipe (isanet.engine.recipes) over the entry's: "teaching"
    iters: int | None = None  # iterations to train to (recipe: the entry's schedule)
    crop_size: tuple[int, int] | None = None  # RandomCrop (height, width)
    batch_size: int | None = None  # images per process and iteration
    lr: float | None = None  # SGD base learning rate, decayed by the poly schedule
    warmup_iters: int | None = None  # linear warm-up: the rate starts at WARMUP_START_FACTOR x (0: none)
    seed: int | None = None  # seeds data order, augmentation and initialisation
    save_every: int | None = None  # checkpoint interval in iterations
    keep_checkpoints: int | None = None  # keep only the newest N iter_*.pth (None: all)
    eval_every: int | None = None  # validation interval in iterations (0: never)
    limit_val: int | None = None  # evaluate on the first N validation images only
    resize_scale: tuple[int, int] | None = None  # RandomResize box (long, short) before cropping
    resize_ratio: tuple[float, float] | None = None  # RandomResize ratio range (recipe: the entry's, 0.5 to 2.0)
    val_scale: tuple[int, int] | None = None  # test Resize box (long, short) for validation
    model_overrides: dict | None = None  # ISANetConfig fields changed from the entry's (e.g. the tiny R-18)
    # starting weights: a zoo checkpoint (classifier re-initialised if classes differ) or an ImageNet backbone
    init: str | Path | None = None
    resume: bool = False  # continue the run in work_dir from its latest checkpoint
    device: str | None = None  # cpu or cuda (None: cuda when there is one)
    precision: Precision | None = None  # fp32, bf16 (CPU autocast where supported; CUDA) or fp16 (CUDA); losses fp32
    sync_bn: bool = False  # SyncBatchNorm across DDP processes
    num_workers: int = 0  # data-loading worker processes (0: in the training process)
    aux_weight: float = 0.4  # weight of the FCN auxiliary loss (0.4 in every published config)
    avg_non_ignore: bool = False  # mmseg's optional CE averaging over labelled pixels only
    eval_at_start: bool = False  # evaluate once before training (the curve's starting point)
    # end this run after that iteration as if killed there (chunked notebooks, resume tests)
    stop_after: int | None = None
    progress: bool = True  # tqdm progress bar
    train_split: str = "train"  # split to train on
    val_split: str = "val"  # split to validate on
    # reader: voc, cityscapes, ade20k or folder (None: folder when data_root has that layout, else the entry's)
    dataset: str | None = None
    skip_bad: bool = False  # folder data sets: leave bad image/mask pairs out with a warning instead of stopping


#: Settings a resumed run must share with its checkpoint (else its losses would not continue the same run);
#: the others (``iters``, intervals, ``val_scale``...) may change, and when left out come from the checkpoint.
RESUME_LOCKED = ("crop_size", "batch_size", "lr", "warmup_iters", "seed", "resize_scale", "resize_ratio",
                 "model_overrides")
#: Settings outside the recipe that a resumed run also takes from its checkpoint when left out (a run that kept
#: 2 checkpoints must keep pruning after a resume; a bf16 run stays one).
RESUME_RESTORED = {"keep_checkpoints": None, "precision": "fp32"}
#: The autocast dtype names of the ``amp_dtype`` field that checkpoints of earlier versions hold.
LEGACY_AMP_DTYPES: dict[str, Precision] = {"bfloat16": "bf16", "float16": "fp16"}


def plain(value):
    """Tuples to lists, paths to strings: the JSON form that checkpoints and comparisons use."""
    return json.loads(json.dumps(value, default=str))


def entry_defaults(entry: ZooEntry) -> dict:
    """The recipe's value of every optional :class:`TrainConfig` field, read from the zoo entry."""
    recipe = entry.train
    iters = recipe.iterations
    return dict(iters=iters, crop_size=recipe.crop_size, batch_size=recipe.batch_size_per_gpu, lr=recipe.lr,
                warmup_iters=0, seed=0,
                save_every=max(iters // 10, 1), eval_every=max(iters // 10, 1), limit_val=None,
                resize_scale=recipe.resize_scale, resize_ratio=recipe.ratio_range, val_scale=entry.test.scale,
                model_overrides={})


def saved_precision(previous: dict, device_type: str) -> Precision | None:
    """The precision a checkpoint's config trained in. Earlier versions had two more switches, ``amp``
    (CUDA mixed precision, ignored elsewhere) and ``amp_dtype`` (``auto``: bf16 where the GPU has it, else
    fp16), which applied when ``precision`` was fp32; they are read here so that such a run resumes as it ran."""
    precision = previous.get("precision")
    if not previous.get("amp") or precision not in (None, "fp32"):
        return precision
    if device_type != "cuda":
        return "fp32"
    name = previous.get("amp_dtype") or "auto"
    if name == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name not in LEGACY_AMP_DTYPES:
        raise TrainError(f"TrainConfig.resume: the checkpoint's amp_dtype {name!r} is none of auto, bfloat16, float16")
    return LEGACY_AMP_DTYPES[name]


def recipe_defaults(config: TrainConfig, entry: ZooEntry) -> tuple[dict, TrainConfig]:
    """The value of every optional field before explicit options: the entry's, then the named recipe's (whose
    model overrides sit under the explicit ``model_overrides``, e.g. a ``head``)."""
    defaults = entry_defaults(entry)
    if config.recipe is not None:
        recipe = get_recipe(config.recipe)
        defaults.update(recipe.settings, model_overrides=dict(recipe.model_overrides))
        if config.model_overrides is not None:
            config = replace(config, model_overrides={**recipe.model_overrides, **config.model_overrides})
    return defaults, config


def resolve_config(config: TrainConfig, entry: ZooEntry, previous: dict | None = None,
                   device_type: str = "cpu") -> TrainConfig:
    """Fill the ``None`` fields (explicit > checkpoint's ``previous`` config > named recipe > zoo entry) and
    refuse a resume whose explicit settings contradict the checkpoint. ``device_type`` is where the run trains
    (an older checkpoint's precision depends on it, see :func:`saved_precision`)."""
    if previous is not None:  # checkpoints older than the warm-up field trained without one
        previous = {"warmup_iters": 0, **previous, "precision": saved_precision(previous, device_type)}
    if previous is not None and previous.get("name") != entry.name:
        raise TrainError(f"TrainConfig.resume: the checkpoint is a run of {previous.get('name')!r}, not {entry.name!r}")
    if previous is not None and config.recipe is None:
        config = replace(config, recipe=previous.get("recipe"))
    if previous is not None and config.recipe != previous.get("recipe"):
        raise TrainError(f"TrainConfig.resume: the checkpoint was trained with recipe {previous.get('recipe')!r}, "
                         f"this run asks for {config.recipe!r}; drop TrainConfig.recipe to continue the same run")
    defaults, config = recipe_defaults(config, entry)
    resolved = {"name": entry.name}
    for key, default in defaults.items():
        given = getattr(config, key)
        if previous is not None and key in RESUME_LOCKED and given is not None and \
                plain(given) != plain(previous.get(key)):
            raise TrainError(f"TrainConfig.resume: the checkpoint was trained with {key}={previous.get(key)} but "
                             f"this run asks for {key}={given}; drop the option to continue the same run")
        if given is None and previous is not None and key in previous:
            given = previous[key]
            given = tuple(given) if isinstance(given, list) else given
        resolved[key] = default if given is None else given
    for key, default in RESUME_RESTORED.items():
        given = getattr(config, key)
        if given is None and previous is not None:
            given = previous.get(key)
        resolved[key] = default if given is None else given
    config = replace(config, **resolved)
    _validate(config)
    return config


#: The range of each checked setting: ``(field, in range, what is expected)``, checked after resolving.
LIMITS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("iters", lambda value: value >= 1, "at least 1"),
    ("batch_size", lambda value: value >= 1, "at least 1"),
    ("crop_size", lambda value: min(value) >= 8 and max(value) <= MAX_IMAGE_SIDE,
     f"(height, width), each 8 to {MAX_IMAGE_SIDE}"),
    ("lr", lambda value: math.isfinite(value) and 0 < value <= MAX_LR, f"a finite number above 0, at most {MAX_LR}"),
    ("warmup_iters", lambda value: value >= 0, "at least 0 (0: no warm-up)"),
    ("save_every", lambda value: value >= 1, "at least 1"),
    ("eval_every", lambda value: value >= 0, "at least 0 (0: never)"),
    ("keep_checkpoints", lambda value: value is None or value >= 1, "None (keep all) or at least 1"),
    ("num_workers", lambda value: value >= 0, "at least 0"),
)


def _validate(config: TrainConfig) -> None:
    for name, in_range, expected in LIMITS:
        value = getattr(config, name)
        if not in_range(value):
            raise TrainError(f"TrainConfig.{name} {value}: out of range, expected {expected}")
    if config.batch_size == 1 and max(config.crop_size) <= OUTPUT_STRIDE:  # the model refuses it at the first step
        raise TrainError(f"TrainConfig.crop_size {config.crop_size} with TrainConfig.batch_size 1: one crop this small "
                         f"is one pixel at 1/{OUTPUT_STRIDE} resolution, and BatchNorm cannot train on one value per "
                         "channel; a larger TrainConfig.crop_size or TrainConfig.batch_size")
