"""The sample fine-tune the notebooks share: one recipe, one cached checkpoint, one head comparison.

Notebook 04 runs it with live curves, notebook 02 needs its result (a model that has learnt *something*) and
must not depend on 04 having run: both call :func:`sample_finetune_config`, and 02 calls
:func:`sample_trained_checkpoint`, which trains once and caches the weights under ``data/samples/checkpoints/``.
The data is the synthetic VOC sample of :data:`isanet.engine.trainer.NOTEBOOK_SAMPLE_DATA`, the settings
:data:`isanet.engine.trainer.NOTEBOOK_SETTINGS` (tiny R-18, 64 px crops); numbers measured on it say nothing
about ISANet on Pascal VOC.

:func:`compare_heads` is the ISA experiment of notebook 04: the same fine-tune (data, seed, iterations,
settings) with the ISA head, the dense head (same projections) and no context module
(:class:`isanet.models.config.ISANetConfig` ``head``), reporting mIoU, step time and the peak memory of one
training step.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from pathlib import Path

import torch

from isanet.engine.config import TrainConfig
from isanet.engine.trainer import NOTEBOOK_SAMPLE_DATA, NOTEBOOK_SETTINGS, Trainer, seg_losses
from isanet.models.config import TINY
from isanet.notebook.session import repo_root, sample_dataset

#: Iterations of the quick (test-runner) fine-tune: enough to run every code path, far too few to learn.
QUICK_ITERS = 20
FULL_ITERS = NOTEBOOK_SETTINGS["iters"]


def sample_finetune_config(work_dir: str | os.PathLike, root: str | os.PathLike | None = None, *, seed: int = 0,
                           iters: int | None = None, head: str = "isa", quick: bool = False,
                           device: str = "cpu", quiet: bool = False, **overrides) -> TrainConfig:
    """The notebooks' fine-tune on the synthetic VOC sample (written once under ``data/samples/``).

    ``iters``: default :data:`QUICK_ITERS` when ``quick`` else :data:`FULL_ITERS`; ``head``: the decode head
    (``"isa"``, ``"dense"``, ``"none"``); ``overrides``: any other :class:`TrainConfig` field.
    """
    iters = iters or (QUICK_ITERS if quick else FULL_ITERS)
    data_root = sample_dataset("voc", root, seed=seed, quiet=quiet, **NOTEBOOK_SAMPLE_DATA)
    settings = {**NOTEBOOK_SETTINGS, "iters": iters, "save_every": iters, "keep_checkpoints": 1,
                "eval_every": max(iters // 2, 1) if quick else NOTEBOOK_SETTINGS["eval_every"],
                "model_overrides": {**TINY, "head": head}, "progress": False}
    if quick:
        settings["limit_val"] = 4
    settings.update(overrides)
    return TrainConfig(data_root=data_root, work_dir=work_dir, device=device, seed=seed, **settings)


def sample_trained_path(root: str | os.PathLike | None = None, *, iters: int = FULL_ITERS, seed: int = 0,
                        head: str = "isa") -> Path:
    """Where :func:`sample_trained_checkpoint` keeps the weights of one (iterations, seed, head) setting."""
    return (Path(root or repo_root()) / "data" / "samples" / "checkpoints"
            / f"isanet_r18_sample_voc_{head}_{iters}it_seed{seed}.pth")


def sample_trained_checkpoint(root: str | os.PathLike | None = None, *, iters: int = FULL_ITERS, seed: int = 0,
                              head: str = "isa", device: str = "cpu", quiet: bool = False) -> Path:
    """Weights of the sample fine-tune (``iters`` iterations from random weights), trained on first use and
    cached; later calls return the file at once. Notebook 04 saves to the same path, so either notebook may
    create it. The file is written atomically: an interrupted run leaves nothing half-written behind."""
    from isanet.io.checkpoint import save_checkpoint

    path = sample_trained_path(root, iters=iters, seed=seed, head=head)
    if not path.is_file():
        if not quiet:
            print(f"training the sample fine-tune once ({iters} iterations, seed {seed}, head {head!r}) -> {path}",
                  flush=True)
        scratch = Path(tempfile.mkdtemp(prefix="isanet-sample-finetune-"))
        try:
            config = sample_finetune_config(scratch / "run", root, seed=seed, iters=iters, head=head,
                                            device=device, quiet=True, eval_every=0, eval_at_start=False)
            trainer = Trainer(config)
            try:
                for _ in trainer.run():
                    pass
                meta, _ = trainer.checkpoint_content(trainer.iteration)
                save_checkpoint(trainer.state.bare_model, path, meta={
                    **meta, "note": f"sample fine-tune, {iters} iterations on SYNTHETIC sample data"})
            finally:
                trainer.close()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if not quiet:
        print(f"SAMPLE-TRAINED CHECKPOINT ({iters} iterations on synthetic data, seed {seed}): {path}")
    return path


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


def compare_heads(root: str | os.PathLike | None = None, heads: tuple[str, ...] = ("isa", "dense", "none"),
                  seeds: tuple[int, ...] = (0,), *, iters: int | None = None, quick: bool = False,
                  device: str = "cpu", on_row=None) -> list[dict]:
    """The same sample fine-tune per head and seed (equal data, iterations and settings); one row each:
    ``head``, ``seed``, ``iters``, ``mIoU_start``/``mIoU`` (validation, before and after), ``step_ms`` (median
    compute time of a training step, data loading excluded, the first 3 steps left out as warm-up),
    ``peak_mb`` (:func:`training_step_peak_bytes`) and ``params_m`` (millions). ``on_row(row)`` sees each row
    as it is finished (progress in a notebook)."""
    rows = []
    for seed in seeds:
        for head in heads:
            scratch = Path(tempfile.mkdtemp(prefix=f"isanet-heads-{head}-"))
            try:
                config = sample_finetune_config(scratch / "run", root, seed=seed, iters=iters, head=head,
                                                quick=quick, device=device, quiet=True, eval_at_start=True)
                trainer = Trainer(config)
                try:
                    records = list(trainer.run())
                finally:
                    trainer.close()
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            model, state = trainer.state.bare_model, trainer.state
            evals = [record["mIoU"] for record in records if "mIoU" in record]
            times = [record["time"] for record in records if "time" in record]
            peak = training_step_peak_bytes(model, state.config.batch_size, tuple(state.config.crop_size),
                                            model.num_classes, str(state.device))
            row = dict(head=head, seed=seed, iters=trainer.iteration, mIoU_start=evals[0], mIoU=evals[-1],
                       step_ms=1000 * statistics.median(times[3:] or times), peak_mb=peak / 2**20,
                       params_m=sum(p.numel() for p in model.parameters()) / 1e6)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def format_head_table(rows: list[dict]) -> str:
    """:func:`compare_heads` rows as a fixed-width table (one line per head and seed)."""
    lines = [f"{'head':>6} {'seed':>4} {'iters':>5} {'mIoU before':>11} {'mIoU after':>10} {'step ms':>8} "
             f"{'peak MB':>8} {'params M':>8}"]
    for row in rows:
        lines.append(f"{row['head']:>6} {row['seed']:>4} {row['iters']:>5} {row['mIoU_start']:11.2f} "
                     f"{row['mIoU']:10.2f} {row['step_ms']:8.1f} {row['peak_mb']:8.1f} {row['params_m']:8.3f}")
    return "\n".join(lines)
