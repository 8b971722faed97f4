"""Setting a training run up: every part the loop of :mod:`isanet.engine.trainer` needs.

:func:`build_parts` takes a :class:`~isanet.engine.config.TrainConfig`, resolves it against the zoo entry or the
checkpoint being resumed, then joins the process group, reads the data, builds (and initialises or restores)
the model, the optimisation (SGD, poly schedule, precision) and DDP, in the order that keeps a resumed run's
random numbers identical to an uninterrupted one's. What it returns is two parts: the
:class:`~isanet.engine.state.RunState` (what the run trains on and where it stands) and the :class:`Optimisation`
(how the weights move).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from isanet.data.transforms import transforms_from_entry
from isanet.engine.config import TrainConfig, TrainError, resolve_config
from isanet.engine.loader import DistContext, TrainStream
from isanet.engine.state import (
    LOG_NAME,
    RunState,
    WorkDirLock,
    apply_init,
    check_fresh_work_dir,
    find_resume_checkpoint,
    read_resume_checkpoint,
    restore_rng,
    seed_everything,
)
from isanet.io.checkpoint import extract_state_dict
from isanet.io.outputs import check_output
from isanet.models.zoo import TestSettings, ZooEntry, build_model, get_entry, short_dataset_name
from isanet.runtime import Precision, autocast, resolve_device, resolve_precision


def poly_lr(iteration: int, max_iters: int, base_lr: float, eta_min: float = 1e-4, power: float = 0.9) -> float:
    """mmengine's ``PolyLR`` (closed form): the learning rate of 0-based ``iteration``."""
    return (base_lr - eta_min) * (1 - min(iteration, max_iters) / max_iters) ** power + eta_min


#: Where a warm-up starts, as a fraction of the schedule's rate (mmengine's ``LinearLR`` ``start_factor``).
WARMUP_START_FACTOR = 0.1


def warmup_factor(iteration: int, warmup_iters: int) -> float:
    """mmengine's ``LinearLR`` (closed form) from :data:`WARMUP_START_FACTOR` to 1 over ``warmup_iters``
    iterations, then 1; chained with ``PolyLR`` over the same iterations, mmengine multiplies the two."""
    if iteration >= warmup_iters:
        return 1.0
    return WARMUP_START_FACTOR + (1 - WARMUP_START_FACTOR) * iteration / warmup_iters


@dataclass(frozen=True)
class PolySchedule:
    """mmengine's ``PolyLR`` as the recipe sets it: stepped per iteration from ``base_lr`` to ``eta_min`` at
    ``iters``, with an optional ``LinearLR`` warm-up over its first ``warmup_iters`` (the two multiplied, as
    mmengine chains them). Kept apart from the optimiser so a checkpoint can record it in mmengine's own form."""

    base_lr: float
    iters: int
    eta_min: float
    power: float
    warmup_iters: int = 0

    def lr(self, iteration: int) -> float:
        return (poly_lr(iteration, self.iters, self.base_lr, self.eta_min, self.power)
                * warmup_factor(iteration, self.warmup_iters))

    def state(self, iteration: int) -> list[dict]:
        """The schedule after ``iteration`` as mmengine's ``param_schedulers`` entries record it."""
        warmup = [{"type": "LinearLR", "by_epoch": False, "begin": 0, "end": self.warmup_iters,
                   "last_step": min(iteration, self.warmup_iters), "base_values": [self.base_lr],
                   "start_factor": WARMUP_START_FACTOR, "end_factor": 1.0}] if self.warmup_iters else []
        return [*warmup, {"type": "PolyLR", "by_epoch": False, "begin": 0, "end": self.iters, "last_step": iteration,
                          "base_values": [self.base_lr], "eta_min": self.eta_min, "power": self.power}]


@dataclass
class Optimisation:
    """How the weights move: SGD under the poly schedule, forward passes in ``precision`` (autocast on
    ``device``), and for fp16 a GradScaler. All of it is saved in a checkpoint and restored on resume."""

    optimizer: torch.optim.SGD
    schedule: PolySchedule
    precision: Precision  # the precision the forward passes really run in (already resolved for the device)
    device: torch.device
    scaler: torch.amp.GradScaler | None = None  # fp16 only: bf16 has fp32's range and needs none

    def set_lr(self, iteration: int) -> float:
        """Give every parameter group the schedule's rate for 0-based ``iteration``; returns it."""
        lr = self.schedule.lr(iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.precision, self.device)

    def backward_and_step(self, loss: torch.Tensor) -> None:
        """Backward and SGD step, through the GradScaler when training in fp16."""
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def state(self, iteration: int) -> dict:
        """The checkpoint fields of the optimisation after ``iteration`` (mmengine's names)."""
        state = {"optimizer": self.optimizer.state_dict(), "param_schedulers": self.schedule.state(iteration)}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def restore(self, previous: dict) -> None:
        """Put back what :meth:`state` saved in the checkpoint being resumed."""
        self.optimizer.load_state_dict(previous["optimizer"])
        if self.scaler is not None and "scaler" in previous:
            self.scaler.load_state_dict(previous["scaler"])


def _previous(config: TrainConfig, work_dir: Path, dist: DistContext,
              messages: list[str]) -> tuple[Path | None, dict | None]:
    """The checkpoint to resume (with ``resume``), after checking the work folder on every process."""
    if config.resume:
        path = find_resume_checkpoint(work_dir)
        return path, read_resume_checkpoint(path)
    if check_fresh_work_dir(work_dir) and dist.is_main:
        messages.append(f"note: replacing {work_dir / LOG_NAME} of an earlier run that was stopped before its "
                        "first checkpoint (it had nothing to resume)")
    dist.barrier()  # every process has looked before rank 0 writes anything there
    return None, None


def _datasets(config: TrainConfig, entry: ZooEntry) -> tuple[object, object]:
    """The training split (required) and the validation split (when evaluating), with errors naming the root."""
    from isanet.data.datasets import DatasetError
    from isanet.data.folder import dataset_kind
    from isanet.data.registry import build_dataset

    root = config.data_root
    kind = dataset_kind(config.dataset, root, short_dataset_name(entry))
    if config.skip_bad and kind != "folder":
        raise TrainError(f"TrainConfig.skip_bad applies to folder data sets only, not {kind}")
    options = {"skip_bad": True} if config.skip_bad else {}
    name = "the folder data set" if kind == "folder" else entry.dataset
    try:
        train_set = build_dataset(kind, root, config.train_split, **options)
    except DatasetError as error:
        raise TrainError(f"TrainConfig.data_root {root}: no usable {config.train_split!r} split of {name}: {error}"
                         ) from None
    if not config.eval_every:
        return train_set, None
    try:
        return train_set, build_dataset(kind, root, config.val_split, **options)
    except DatasetError as error:
        raise TrainError(f"TrainConfig.data_root {root}: no usable {config.val_split!r} split to evaluate on "
                         f"({error}); pass TrainConfig.eval_every 0 to train without evaluating") from None


def _precision(config: TrainConfig, device: torch.device,
               messages: list[str]) -> tuple[Precision, torch.amp.GradScaler | None]:
    """``(precision, GradScaler)`` of ``config.precision`` on ``device``: bf16 needs no scaler (CPUs with
    native bf16, GPUs), fp16 (GPUs) trains with a GradScaler; an unsupported choice trains in fp32, with the
    reason among the messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        precision = resolve_precision(config.precision, device, "TrainConfig.precision")
    messages.extend(str(warning.message) for warning in caught)
    return precision, torch.amp.GradScaler(device.type) if precision == "fp16" else None


def _model(config: TrainConfig, num_classes: int, previous: dict | None, messages: list[str]) -> tuple[nn.Module, str]:
    """The model with its starting weights: the checkpoint's (resume), ``init``'s, or random."""
    model = build_model(config.name, num_classes=num_classes, **config.model_overrides)
    report = ""
    if previous is not None:
        model.load_state_dict(extract_state_dict(previous)[0])
    elif config.init:
        report = apply_init(model, config.init)
    else:
        messages.append("note: training from random weights (the published recipe starts from ImageNet ResNet "
                        "weights: pass TrainConfig.init with an mmseg resnet*_v1c checkpoint, or a zoo checkpoint)")
    if report:
        messages.append(report)
    return model, report


def _distribute(model: nn.Module, config: TrainConfig, dist: DistContext, device: torch.device,
                messages: list[str]) -> tuple[nn.Module, nn.Module]:
    """``(bare, wrapped)``: the model on ``device`` with SyncBN (GPUs only, as torch supports it), and the same
    inside DDP when there are several processes (else the bare model again)."""
    if config.sync_bn:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            messages.append("TrainConfig.sync_bn is ignored on CPU: torch's SyncBatchNorm runs on GPUs only")
    model.to(device)
    if not dist.enabled:
        return model, model
    device_ids = [device.index] if device.type == "cuda" else None
    return model, nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def build_parts(config: TrainConfig) -> tuple[RunState, Optimisation]:
    """Everything :class:`isanet.engine.trainer.Trainer` needs, resumed from the work folder when ``config.resume``."""
    entry = get_entry(config.name)
    try:
        device_name = resolve_device(config.device, "TrainConfig.device")
    except ValueError as error:
        raise TrainError(str(error)) from None
    dist = DistContext.from_env(device_name == "cuda")
    lock = None
    try:
        if dist.is_main:  # rank 0 alone writes in the folder
            check_output(config.work_dir, "TrainConfig.work_dir", kind="dir")
            lock = WorkDirLock(Path(config.work_dir)).acquire()
        state, optimisation = _build_parts(config, entry, dist, device_name)
        state.lock = lock
        return state, optimisation
    except BaseException:
        if lock is not None:
            lock.release()
        dist.close()
        raise


def _build_parts(config: TrainConfig, entry: ZooEntry, dist: DistContext,
                 device_name: str) -> tuple[RunState, Optimisation]:
    messages: list[str] = []
    device = torch.device("cuda", dist.local_rank) if device_name == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # mmseg's env_cfg: fixed crop sizes, so the autotuned kernels pay off
    work_dir = Path(config.work_dir)
    resumed_from, previous = _previous(config, work_dir, dist, messages)
    if previous is not None and config.init:
        messages.append(f"TrainConfig.init {config.init} is ignored: resuming restores the weights of {resumed_from}")
    config = resolve_config(config, entry, previous["meta"]["config"] if previous else None, device.type)
    if previous is not None and config.iters < int(previous["meta"]["iter"]):
        raise TrainError(f"TrainConfig.iters {config.iters}: the run in {work_dir} is already at iteration "
                         f"{previous['meta']['iter']}; give more iterations to train further, or leave "
                         "TrainConfig.iters out")
    if previous is not None and previous["meta"]["config"].get("iters") != config.iters:
        messages.append(f"note: iters changed from {previous['meta']['config'].get('iters')} to {config.iters}: "
                        "the poly schedule now ends at the new count")
    seed_everything(config.seed)
    train_set, val_set = _datasets(config, entry)
    model, report = _model(config, train_set.num_classes, previous, messages)
    precision, scaler = _precision(config, device, messages)
    model, wrapped = _distribute(model, config, dist, device, messages)
    recipe = entry.train
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    schedule = PolySchedule(config.lr, config.iters, recipe.eta_min, recipe.power, config.warmup_iters)
    optimisation = Optimisation(optimizer, schedule, precision, device, scaler)
    train_transform, _ = transforms_from_entry(entry)
    train_transform = replace(train_transform, crop_size=tuple(config.crop_size), scale=tuple(config.resize_scale),
                              ratio_range=tuple(config.resize_ratio))
    state = RunState(config, entry, dist, device, work_dir, TrainStream(train_set, train_transform, config.seed),
                     val_set, _eval_settings(entry, config), wrapped, model, resumed_from=resumed_from,
                     init_report=report, messages=messages)
    if previous is not None:
        optimisation.restore(previous)
        _restore(state, previous)
    state.messages.insert(0, _header(state, optimisation, len(train_set)))
    return state, optimisation


def _eval_settings(entry: ZooEntry, config: TrainConfig) -> TestSettings:
    return entry.test.replace(scale=tuple(config.val_scale))


def _restore(state: RunState, previous: dict) -> None:
    """Position and (last, so nothing after it draws) the RNG states of the checkpoint."""
    state.start_iter, state.position = int(previous["meta"]["iter"]), int(previous["sampler"]["position"])
    saved_world = previous["sampler"].get("world_size", 1)
    if saved_world != state.dist.world_size:
        state.messages.append(f"note: the checkpoint was written by {saved_world} process(es), this run has "
                              f"{state.dist.world_size}: the data continues where it stopped, but batches are "
                              "split differently, so losses will not match an uninterrupted run")
    state.messages.append(f"resuming from {state.resumed_from} at iteration {state.start_iter}")
    restore_rng(previous["rng"])


def _header(state: RunState, optimisation: Optimisation, num_images: int) -> str:
    config, world = state.config, state.dist.world_size
    return (f"isanet train {config.name}: {num_images} training images, {config.iters} iterations of "
            f"{world} x {config.batch_size} crops {config.crop_size[0]}x{config.crop_size[1]} on {state.device} "
            f"(precision {optimisation.precision}), lr {config.lr} poly -> {optimisation.schedule.eta_min}"
            f"{f' after a {config.warmup_iters}-iteration warm-up' if config.warmup_iters else ''}, "
            f"work dir {state.work_dir}")
