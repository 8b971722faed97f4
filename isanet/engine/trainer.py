"""Fine-tuning ISANet with mmsegmentation's published recipe, resumable to the bit, on one or many processes.

The recipe (every VOC/ADE20K/Cityscapes zoo entry, read from the entry itself): SGD lr 0.01, momentum 0.9,
weight decay 5e-4 on every parameter; mmengine's ``PolyLR`` stepped per iteration,
``lr(i) = (lr0 - 1e-4) * (1 - i / max_iters) ** 0.9 + 1e-4``; cross-entropy with 255 ignored, averaged as
mmseg's default ``CrossEntropyLoss`` averages (``avg_non_ignore=False``: the sum over labelled pixels divided by
*all* pixels of the batch, padding included); the auxiliary FCN head's loss weighted 0.4; crop 512x512 and 4
images per process for VOC; the data module's ``RandomResize -> RandomCrop(cat_max_ratio 0.75) -> RandomFlip ->
PhotoMetricDistortion -> Pad`` pipeline. The log uses mmseg's names: ``decode.loss_ce``, ``aux.loss_ce`` (the
latter already times 0.4), ``loss`` their sum, ``decode.acc_seg``. The published runs used 4 GPUs x 4 images
and started from ImageNet weights (``init`` an mmseg ``resnet50_v1c`` file); one process trains with a
quarter of that batch.

Exact resume: data is a pure function of the global sample position (:mod:`isanet.engine.loader`), and a
checkpoint holds model, optimiser, scheduler step, GradScaler, that position and the RNG states, so a run
killed after a checkpoint and resumed logs the same losses as one that was never stopped (bit for bit on CPU).

Launch with ``torchrun --nproc_per_node N -m isanet.cli train ...`` for DDP (NCCL on GPUs, gloo on CPUs; rank 0
alone writes). ``precision`` is the one precision switch: ``bf16`` (CPUs with native bf16, GPUs) or ``fp16``
(GPUs, with a GradScaler) autocast the forward passes; the losses stay fp32.

A notebook-sized fine-tune, with its measured numbers and an example: the ``voc-sample`` recipe
(:data:`isanet.engine.recipes.VOC_SAMPLE`).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from isanet.data.datasets import IGNORE_INDEX
from isanet.engine.config import TrainConfig, TrainError, plain, resolve_config
from isanet.engine.loader import StreamBatches, build_loader, worker_errors_in_one_line
from isanet.engine.log import JsonlLog
from isanet.engine.run_setup import build_parts, poly_lr
from isanet.engine.state import LOG_NAME, write_checkpoint
from isanet.io.digest import state_dict_digest


def cross_entropy(logits: torch.Tensor, label: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                  avg_non_ignore: bool = False) -> torch.Tensor:
    """mmseg's ``CrossEntropyLoss``: per-pixel CE (ignored pixels 0) summed, divided by all pixels (the
    default) or by the labelled ones (``avg_non_ignore``), plus float32 eps as mmseg adds."""
    per_pixel = F.cross_entropy(logits.float(), label, ignore_index=ignore_index, reduction="none")
    count = (label != ignore_index).sum() if avg_non_ignore else label.numel()
    return per_pixel.sum() / (count + torch.finfo(torch.float32).eps)


def seg_losses(logits: torch.Tensor, aux_logits: torch.Tensor | None, label: torch.Tensor, aux_weight: float = 0.4,
               avg_non_ignore: bool = False) -> dict[str, torch.Tensor]:
    """``{"loss", "decode.loss_ce", "aux.loss_ce"}`` as mmseg logs them (``aux.loss_ce`` already weighted)."""
    losses = {"decode.loss_ce": cross_entropy(logits, label, avg_non_ignore=avg_non_ignore)}
    if aux_logits is not None:
        losses["aux.loss_ce"] = aux_weight * cross_entropy(aux_logits, label, avg_non_ignore=avg_non_ignore)
    losses["loss"] = sum(losses.values())
    return losses


def pixel_accuracy(logits: torch.Tensor, label: torch.Tensor) -> float:
    """mmseg's ``decode.acc_seg``: percent of labelled pixels whose argmax is right."""
    keep = label != IGNORE_INDEX
    return float((logits.argmax(1)[keep] == label[keep]).float().mean() * 100) if keep.any() else 0.0


def param_digest(model: nn.Module) -> str:
    """sha256 of every parameter's name and bytes: equal digests mean bit-identical weights (replicas,
    resumes)."""
    return state_dict_digest(dict(model.named_parameters()))


class Trainer:
    """One training run; :meth:`run` yields a record per iteration. Build it, iterate it, then :meth:`close`."""

    def __init__(self, config: TrainConfig, wording: Callable[[str], str] | None = None):
        """``wording`` rewrites each message before it is printed: messages name :class:`TrainConfig` fields,
        and ``isanet train`` passes the rewriting that names its options instead."""
        self.state, self.optimisation = build_parts(config)  # what the run trains on; how the weights move
        self.wording = wording
        self.config, self.dist = self.state.config, self.state.dist
        self.iteration = self.state.start_iter
        self.last_checkpoint: Path | None = self.state.resumed_from
        self.last_eval: dict = {}
        self.started = time.perf_counter()

    def say(self, message: str) -> None:
        if self.dist.is_main:
            tqdm.write(message if self.wording is None else self.wording(message), file=sys.stderr)

    def run(self) -> Iterator[dict]:
        """Train from the start (or resumed) iteration; yields each iteration's log record on every process."""
        state, config = self.state, self.config
        # resumed: the records up to the checkpoint's iteration stay; fresh: an empty log (an earlier one can
        # only be of a run stopped before its first checkpoint, see check_fresh_work_dir)
        log = JsonlLog(state.work_dir / LOG_NAME, keep_up_to=state.start_iter if config.resume else -1,
                       resumed=config.resume) \
            if self.dist.is_main else None
        try:
            for message in state.messages:
                self.say(message)
            if state.start_iter == 0 and config.eval_at_start and config.eval_every:
                yield self._record(log, {"iter": 0, **self._evaluate()})
            yield from self._iterations(log)
        finally:
            if log is not None:
                log.close()
            if state.lock is not None:  # the run writes nothing more: free the folder even if never closed
                state.lock.release()

    def _iterations(self, log: JsonlLog | None) -> Iterator[dict]:
        state, config = self.state, self.config
        stop = min(config.iters, config.stop_after if config.stop_after is not None else config.iters)
        batches = StreamBatches(state.position, max(stop - state.start_iter, 0), config.batch_size,
                                self.dist.rank, self.dist.world_size)
        loader = build_loader(state.stream, batches, config.num_workers, state.device.type == "cuda")
        bar = tqdm(total=config.iters, initial=state.start_iter, desc="train", unit="it",
                   disable=not (config.progress and self.dist.is_main), dynamic_ncols=True)
        try:
            tick = time.perf_counter()
            for images, labels in worker_errors_in_one_line(loader):
                record = self._step(images, labels, data_time=time.perf_counter() - tick)
                if config.eval_every and (self.iteration % config.eval_every == 0 or self.iteration == config.iters):
                    record.update(self._evaluate())
                self._record(log, record)
                if self.iteration % config.save_every == 0 or self.iteration == config.iters:
                    self._save()
                bar.update()
                bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                tick = time.perf_counter()
                yield record
        finally:
            bar.close()

    def _step(self, images: torch.Tensor, labels: torch.Tensor, data_time: float) -> dict:
        state, config, optimisation = self.state, self.config, self.optimisation
        lr = optimisation.set_lr(self.iteration)
        started = time.perf_counter()
        images = images.to(state.device, non_blocking=True)
        labels = labels.to(state.device, non_blocking=True)
        with optimisation.autocast():
            outputs = state.model(images)
        logits, aux_logits = outputs if isinstance(outputs, tuple) else (outputs, None)  # auxiliary=False models
        # the losses in fp32 whatever the forward ran in (bf16 logits would round the softmax)
        logits, aux_logits = logits.float(), None if aux_logits is None else aux_logits.float()
        losses = seg_losses(logits, aux_logits, labels, config.aux_weight, config.avg_non_ignore)
        optimisation.optimizer.zero_grad(set_to_none=True)
        optimisation.backward_and_step(losses["loss"])
        self.iteration += 1
        values = {key: float(value.detach()) for key, value in losses.items()}
        values["decode.acc_seg"] = pixel_accuracy(logits.detach(), labels)
        record = {"iter": self.iteration, "lr": lr, **self.dist.mean(values)}
        if not math.isfinite(record["loss"]):  # averaged over processes, so every one of them stops here
            raise TrainError(
                f"iteration {self.iteration}: the loss is {record['loss']} (lr {lr:.3g}): training diverged; "
                f"stopped, nothing more is saved; "
                + (f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else
                   "no checkpoint was written") + "; try a smaller TrainConfig.lr")
        record.update(time=round(time.perf_counter() - started, 4), data_time=round(data_time, 4))
        if state.device.type == "cuda":
            record["memory_mb"] = round(torch.cuda.max_memory_allocated(state.device) / 2**20)
        return record

    def _evaluate(self) -> dict:
        """mIoU/aAcc/mAcc on the validation split (rank 0; the others wait), in the training precision."""
        result = {}
        if self.dist.is_main:
            from isanet.evaluation.evaluate import evaluate_predictor
            from isanet.evaluation.inference import Predictor

            started = time.perf_counter()
            predictor = Predictor(self.state.bare_model, self.state.eval_settings, self.optimisation.precision,
                                  self.state.device)
            metrics = evaluate_predictor(predictor, self.state.val_set, limit=self.config.limit_val, progress=False)
            result = {key: metrics[key] for key in ("mIoU", "aAcc", "mAcc")}
            result["eval_time"] = round(time.perf_counter() - started, 3)
            self.last_eval = {"iter": self.iteration, **result}
        self.dist.barrier()
        return result

    def _record(self, log: JsonlLog | None, record: dict) -> dict:
        if log is not None:
            log.write(record)
        return record

    def _save(self) -> None:
        if self.dist.is_main:
            meta, extra = self.checkpoint_content(self.iteration)
            self.last_checkpoint = write_checkpoint(self.state.bare_model, self.state.work_dir, self.iteration, meta,
                                                    keep=self.config.keep_checkpoints, **extra)
        self.dist.barrier()

    def checkpoint_content(self, iteration: int) -> tuple[dict, dict]:
        """``(meta, extra)`` of the checkpoint after ``iteration`` (see
        :meth:`isanet.engine.state.RunState.checkpoint_content`)."""
        return self.state.checkpoint_content(self.optimisation.state(iteration), iteration)

    def interrupt_message(self) -> str:
        where = (f"the last checkpoint is {self.last_checkpoint}; continue with the same settings plus "
                 "TrainConfig.resume" if self.last_checkpoint else
                 "no checkpoint was written yet; start again without TrainConfig.resume")
        return f"interrupted after iteration {self.iteration}: {where} (checkpoint files are never half-written)"

    def summary(self) -> dict:
        """What the run did: iterations, last losses and evaluation, checkpoint, weights digest, wall time."""
        return {"work_dir": str(self.state.work_dir), "start_iter": self.state.start_iter, "iter": self.iteration,
                "max_iters": self.config.iters, "last_checkpoint": str(self.last_checkpoint or ""),
                "last_eval": self.last_eval, "param_sha256": param_digest(self.state.bare_model),
                "world_size": self.dist.world_size, "rank": self.dist.rank, "device": str(self.state.device),
                "precision": self.optimisation.precision, "init": self.state.init_report,
                "config": plain(asdict(self.config)), "wall_time_s": round(time.perf_counter() - self.started, 2)}

    def close(self) -> None:
        self.state.close()


def train(config: TrainConfig, on_log: Callable[[dict], None] | None = None) -> dict:
    """Run ``config`` to the end (or ``stop_after``); ``on_log(record)`` sees every record on rank 0 (live
    curves in a notebook). Returns :meth:`Trainer.summary`. Ctrl-C stops after saying where to resume."""
    return run_to_end(Trainer(config), on_log)


def run_to_end(trainer: Trainer, on_log: Callable[[dict], None] | None = None) -> dict:
    """:func:`train` for a :class:`Trainer` already built, so a caller can tell a refused set-up (building it)
    from a failure during the run (``isanet train`` exits 2 for the first and 1 for the second); closes it."""
    try:
        for record in trainer.run():
            if on_log is not None and trainer.dist.is_main:
                on_log(record)
        return trainer.summary()
    except KeyboardInterrupt:
        trainer.say(trainer.interrupt_message())
        raise
    finally:
        trainer.close()


__all__ = ["TrainConfig", "TrainError", "Trainer", "cross_entropy", "param_digest", "poly_lr", "resolve_config",
           "run_to_end", "seg_losses", "train"]
