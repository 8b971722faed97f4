"""Notebook 04's sample fine-tune: the mechanics of the published recipe, with live curves, in CPU-minutes.

:func:`sample_finetune_config` is the run; :func:`sample_trained_path` where its weights are kept. The data
is the synthetic VOC sample of :data:`isanet.engine.recipes.VOC_SAMPLE_DATA`, the settings the ``voc-sample``
recipe (:data:`isanet.engine.recipes.VOC_SAMPLE`: tiny R-18, 64 px crops); numbers measured on it say nothing
about ISANet on Pascal VOC.

:func:`training_step_peak_bytes` measures one training step's peak memory (notebook 04's exercise 3). The head
experiment is no longer run on this sample, whose classes can be read off each object: it runs on the context
task (:mod:`isanet.notebook.teaching`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from isanet.engine.config import TrainConfig
from isanet.engine.recipes import VOC_SAMPLE, VOC_SAMPLE_DATA
from isanet.engine.trainer import seg_losses
from isanet.notebook.session import repo_root, sample_dataset

#: Iterations of the quick (test-runner) fine-tune: enough to run every code path, far too few to learn.
QUICK_ITERS = 20
FULL_ITERS = VOC_SAMPLE.iters


def sample_finetune_config(work_dir: str | os.PathLike, root: str | os.PathLike | None = None, *, seed: int = 0,
                           iters: int | None = None, head: str = "isa", quick: bool = False,
                           device: str = "cpu", quiet: bool = False, **overrides) -> TrainConfig:
    """The notebooks' fine-tune on the synthetic VOC sample (written once under ``data/samples/``): the
    ``voc-sample`` recipe spelled out, evaluated before the first step too (the curve's starting point).

    ``iters``: default :data:`QUICK_ITERS` when ``quick`` else :data:`FULL_ITERS`; ``head``: the decode head
    (``"isa"``, ``"dense"``, ``"none"``); ``overrides``: any other :class:`TrainConfig` field.
    """
    iters = iters or (QUICK_ITERS if quick else FULL_ITERS)
    data_root = sample_dataset("voc", root, seed=seed, quiet=quiet, **VOC_SAMPLE_DATA)
    settings = {**VOC_SAMPLE.config_fields(), "iters": iters, "save_every": iters, "keep_checkpoints": 1,
                "eval_every": max(iters // 2, 1) if quick else VOC_SAMPLE.eval_every, "eval_at_start": True,
                "model_overrides": {**VOC_SAMPLE.model_overrides, "head": head}, "progress": False}
    if quick:
        settings["limit_val"] = 4
    settings.update(overrides)
    return TrainConfig(data_root=data_root, work_dir=work_dir, device=device, seed=seed, **settings)


def sample_trained_path(root: str | os.PathLike | None = None, *, iters: int = FULL_ITERS, seed: int = 0,
                        head: str = "isa") -> Path:
    """Where :func:`sample_trained_checkpoint` keeps the weights of one (iterations, seed, head) setting."""
    return (Path(root or repo_root()) / "data" / "samples" / "checkpoints"
            / f"isanet_r18_sample_voc_{head}_{iters}it_seed{seed}.pth")


def training_step_peak_bytes(model: torch.nn.Module, batch_size: int, crop_size: tuple[int, int],
                             num_classes: int, device: str = "cpu") -> int:
    """Peak bytes of one forward + backward of ``model`` in train mode on a random batch of the given size
    (:func:`isanet.analysis.memory.peak_memory`: exact live tensor bytes on CPU, the allocator's peak on CUDA).
    Gradients are cleared before (so their storage counts, as in a training step that zeroes with
    ``set_to_none``, the trainer's way) and after; the model's mode is restored."""
    from isanet.analysis.memory import peak_memory

    images = torch.randn(batch_size, 3, *crop_size, device=device)
    labels = torch.randint(0, num_classes, (batch_size, *crop_size), device=device)
    was_training = model.training
    model.train()
    model.zero_grad(set_to_none=True)

    def step() -> None:
        outputs = model(images)
        logits, aux = outputs if isinstance(outputs, tuple) else (outputs, None)
        seg_losses(logits, aux, labels)["loss"].backward()

    try:
        return peak_memory(step, device)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
