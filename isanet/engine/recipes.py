"""Named training recipes: settings that belong together, chosen by name (``isanet train --recipe NAME``).

A recipe replaces the zoo entry's schedule and architecture sizes for one purpose; options given on the
command line (or fields set in :class:`~isanet.engine.config.TrainConfig`) still override it, and the
checkpoint meta records its name (``meta["recipe"]``) beside the resolved settings (``meta["config"]``).

``teaching``: the model whose attention the notebooks show, trained on the context task
(:mod:`isanet.data.context`, ``isanet sample-data context``). Why each setting:

- **ResNet-V1c-10 at width 16** (one block a stage, 16-32-64-128 channels; a checkpoint of about 2 MB): its
  receptive field is small against the 160-px pictures, so the beacon that decides an object's class is out of
  reach of the convolutions and must come through the head's attention.
- **Whole 160-px pictures as crops** (``RandomResize`` ratio 0.75-1.0 of 160, padded to 160): a crop never
  cuts the beacon out, which would make its objects' labels undecidable.
- **down_factor (4, 4)** on the 20 x 20 feature map: 25 blocks of 4 x 4 and 16 long-range groups of 5 x 5,
  in training and validation alike, so both ISA steps attend over several pixels and both get gradients
  (``tests/engine/test_recipes.py`` checks the query and key projections of both). The published (8, 8) on a
  map this small would leave the long-range step groups of one pixel: a softmax over one key is always 1, and
  its projections would never learn.
- **The schedule** (``iters`` steps of ``batch_size`` pictures at ``lr``: :data:`TEACHING`'s settings): about
  three CPU-minutes on one thread (``benchmarks/context_experiment.py`` times it).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recipe:
    """One named recipe: :class:`~isanet.engine.config.TrainConfig` fields and ``ISANetConfig`` overrides."""

    name: str
    description: str
    settings: dict = field(default_factory=dict)  # TrainConfig fields (iters, crop_size, lr, ...)
    model_overrides: dict = field(default_factory=dict)  # ISANetConfig fields (depth, widths, down_factor)


#: The teaching model's architecture (``head`` added per run): see the module docstring for why.
TEACHING_MODEL = dict(depth=10, backbone_width=16, channels=64, isa_channels=32, aux_channels=32, down_factor=(4, 4))

TEACHING = Recipe(
    name="teaching",
    description="the context task's teaching model: ResNet-V1c-10 x16, whole 160-px pictures, down_factor 4x4",
    settings=dict(iters=500, crop_size=(160, 160), batch_size=8, lr=0.05, resize_scale=(160, 160),
                  resize_ratio=(0.75, 1.0), val_scale=(160, 160), save_every=500, eval_every=100),
    model_overrides=TEACHING_MODEL,
)

RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (TEACHING,)}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name is refused with the known ones."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: choose one of {sorted(RECIPES)}")
    return RECIPES[name]
