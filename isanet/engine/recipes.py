"""Named training recipes, the one home of the training presets: settings that belong together, chosen by name.

A recipe replaces the zoo entry's schedule and architecture sizes for one purpose. Named in a run
(``TrainConfig(recipe=NAME)``, ``isanet train --recipe NAME``), options given on the command line (or fields set
in :class:`~isanet.engine.config.TrainConfig`) still override it, and the checkpoint meta records its name
(``meta["recipe"]``) beside the resolved settings (``meta["config"]``). Spelled out instead
(``TrainConfig(**recipe.config_fields())``, as the notebooks' sample fine-tune does), the run records the same
settings and no name. :data:`RECIPES` holds them all.

``teaching``: the model whose attention the notebooks show, trained on the relay task (``context``,
:mod:`isanet.data.context`, ``isanet sample-data context``), where ISA needs both of its steps. Why each setting:

- **ResNet-V1c-10 at width 16** (one block a stage, 16-32-64-128 channels; a checkpoint of about 2 MB): its
  input gradient fades within about half the 160-px picture around a pixel (notebook 04 measures it: 90 % inside
  a 78-px square), and the beacon is at least 48 px from every object, so what reaches an object's features
  through the convolutions is faint; the head without attention (``none``) scores about 50 on the task, so the
  team must come through the head's attention.
- **Whole 160-px pictures as crops** (``RandomResize`` ratio 0.75-1.0 of 160, padded to 160): a crop never
  cuts the beacon out, which would make its objects' labels undecidable.
- **down_factor (8, 8)**, the published one, on the 20 x 20 feature map (padded to 24 x 24): 64 long-range
  groups of 9 pixels 8 apart and 9 blocks of 8 x 8. The relay task's 16-px beacon holds only 4 to 9 of the 64
  groups, so most object pixels get the team through a relay pixel of their block: long range, then short range.
  Both steps attend over several pixels, so both get gradients (``tests/engine/test_recipes.py`` checks the
  query and key projections of both).
- **The schedule** (``iters`` steps of ``batch_size`` pictures at ``lr``: :data:`TEACHING`'s settings, chosen by
  the seed sweeps in ``benchmarks/README.md``): about four CPU-minutes on one thread.

``teaching-one-hop``: the first teaching model's recipe, kept as the contrast, for the one-hop task
(``context-one-hop``): ``down_factor (4, 4)`` (16 groups of 25, 25 blocks of 4 x 4), 500 iterations at lr 0.05.
Its 32-px beacon covers every long-range group, so the long-range step alone decides the objects.

``voc-sample``: notebook 04's fine-tune of the synthetic VOC sample (``isanet sample-data voc`` with
:data:`VOC_SAMPLE_DATA`: 16 train / 8 val 128-px images whose objects belong to the first 5 VOC object classes):
the tiny R-18 (:data:`isanet.models.config.TINY`), 64x64 crops, 4 per batch, lr 0.05, 300 iterations, evaluation
every 50; CPU, one thread: about two minutes. Measured by ``benchmarks/finetune_voc_sample.py`` (torch 2.13, this
kit's 2-core CPU): val mIoU 0.00 -> 95.95 with seed 0, 0.67 -> 47.68 with seed 1, 0.00 -> 78.65 with seed 2; the
spread over seeds is wide, so one run says little (notebook 04 shows it). Five classes, because from random
weights this model learns twenty far more slowly: the same run on a sample of all 20 (``object_classes=None``,
seed 1) reaches an mIoU of about 7 after 150 iterations, 15 after 600::

    from isanet.data.registry import write_sample_dataset
    from isanet.engine.recipes import VOC_SAMPLE, VOC_SAMPLE_DATA
    from isanet.engine.trainer import TrainConfig, train
    from isanet.notebook.plots import plot_training_curves
    top = write_sample_dataset("voc", "data/sample", **VOC_SAMPLE_DATA)
    records = []
    summary = train(TrainConfig(data_root=top.parent, work_dir="work_dirs/tiny", eval_at_start=True,
                                **VOC_SAMPLE.config_fields()),
                    on_log=records.append)              # one record per iteration, mIoU on evaluation steps
    plot_training_curves(records)                       # or the file: work_dirs/tiny/log.jsonl
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from isanet.models.config import TINY


@dataclass(frozen=True)
class Recipe:
    """One named recipe: the :class:`~isanet.engine.config.TrainConfig` settings it fixes (None: the zoo
    entry's) and the ``ISANetConfig`` fields it changes (read-only, like the rest)."""

    name: str
    description: str
    iters: int | None = None
    crop_size: tuple[int, int] | None = None
    batch_size: int | None = None
    lr: float | None = None
    warmup_iters: int | None = None
    resize_scale: tuple[int, int] | None = None
    resize_ratio: tuple[float, float] | None = None
    val_scale: tuple[int, int] | None = None
    save_every: int | None = None
    eval_every: int | None = None
    model_overrides: Mapping[str, Any] = field(default_factory=dict)  # depth, widths, down_factor...

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_overrides", MappingProxyType(dict(self.model_overrides)))

    @property
    def settings(self) -> dict[str, Any]:
        """The TrainConfig fields it sets, by name: what :func:`~isanet.engine.config.resolve_config` lays over
        the entry's values."""
        return {name: getattr(self, name) for name in SETTINGS if getattr(self, name) is not None}

    def config_fields(self) -> dict[str, Any]:
        """The recipe as TrainConfig keyword arguments, for a run that spells it out instead of naming it."""
        return {**self.settings, "model_overrides": dict(self.model_overrides)}


#: The TrainConfig fields a recipe may set.
SETTINGS = tuple(item.name for item in fields(Recipe) if item.name not in ("name", "description", "model_overrides"))


#: The teaching model's architecture (``head`` added per run): see the module docstring for why.
TEACHING_MODEL = dict(depth=10, backbone_width=16, channels=64, isa_channels=32, aux_channels=32, down_factor=(8, 8))

TEACHING = Recipe(
    name="teaching",
    description="the relay task's teaching model: ResNet-V1c-10 x16, whole 160-px pictures, down_factor 8x8",
    iters=1000, crop_size=(160, 160), batch_size=8, lr=0.02, warmup_iters=100, resize_scale=(160, 160),
    resize_ratio=(0.75, 1.0), val_scale=(160, 160), save_every=1000, eval_every=100,
    model_overrides=TEACHING_MODEL,
)

TEACHING_ONE_HOP = replace(
    TEACHING, name="teaching-one-hop",
    description="the one-hop task's model (the first teaching model): as teaching, down_factor 4x4, 500 iterations",
    iters=500, lr=0.05, warmup_iters=None, save_every=500, model_overrides={**TEACHING_MODEL, "down_factor": (4, 4)},
)
#: The recipe of each context task (:data:`isanet.data.context.CONTEXT_TASKS`).
TASK_RECIPES = {"context": TEACHING, "context-one-hop": TEACHING_ONE_HOP}

VOC_SAMPLE = Recipe(
    name="voc-sample",
    description="notebook 04's fine-tune of the synthetic VOC sample: tiny R-18, 64-px crops, CPU-minutes",
    iters=300, crop_size=(64, 64), batch_size=4, lr=0.05, resize_scale=(512, 128), val_scale=(512, 128),
    save_every=100, eval_every=50,
    model_overrides=TINY,
)
#: The sample :data:`VOC_SAMPLE` was measured on: ``write_sample_dataset("voc", out_dir, **VOC_SAMPLE_DATA)``.
VOC_SAMPLE_DATA: Mapping[str, int] = MappingProxyType(dict(num_train=16, num_val=8, size=128, object_classes=5))

RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (TEACHING, TEACHING_ONE_HOP, VOC_SAMPLE)}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name is refused with the known ones."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: choose one of {sorted(RECIPES)}")
    return RECIPES[name]
