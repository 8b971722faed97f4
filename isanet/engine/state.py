"""Where a run stands and what it keeps on disk: the :class:`RunState`, the work folder and its lock,
mmseg-format checkpoints and RNG states. (The JSONL log is :mod:`isanet.engine.log`; its file name,
:data:`LOG_NAME`, is here with the other names in the work folder.)

A checkpoint is what mmseg/mmengine write (``{"meta": {iter, epoch, seed, config, dataset_meta, ...},
"state_dict", "optimizer", "param_schedulers"}``, so mmseg can load our weights) plus what exact resume
needs: the sample stream's position and the torch / numpy / python RNG states. Files are written atomically
(temporary file + rename) and ``latest.pth`` is an atomically replaced hard link to (or copy of) the newest
``iter_N.pth``, so an interrupt at any moment leaves the previous checkpoint whole.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from isanet.data.datasets import SegDataset
from isanet.engine.config import TrainConfig, TrainError, plain
from isanet.engine.loader import DistContext, TrainStream
from isanet.io.atomic import atomic_path, clean_stale_temporaries, process_alive
from isanet.io.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_finite,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from isanet.io.outputs import OutputError, check_replaceable, written_by_kit
from isanet.models.zoo import TestSettings, ZooEntry

LOG_NAME, LATEST_NAME = "log.jsonl", "latest.pth"
ITER_FILE = re.compile(r"^iter_(\d+)\.pth$")


# ---- the work folder ----

def iteration_checkpoints(work_dir: Path) -> dict[int, Path]:
    """``{N: work_dir/iter_N.pth}`` for every checkpoint file in the folder."""
    if not work_dir.is_dir():
        return {}
    return {int(m.group(1)): path for path in work_dir.iterdir() if (m := ITER_FILE.match(path.name))}


def check_fresh_work_dir(work_dir: Path) -> bool:
    """Refuse to start over a folder that already holds a run: its log and checkpoints would be mixed up.
    A log without any checkpoint (a run stopped before its first save: nothing to resume) may be replaced
    when the kit wrote it (a ``log.jsonl`` of your own is named and kept); returns whether there is such a log."""
    if work_dir.exists() and not work_dir.is_dir():
        raise TrainError(f"TrainConfig.work_dir {work_dir}: exists and is not a folder")
    found = sorted(path.name for path in [work_dir / LATEST_NAME, *iteration_checkpoints(work_dir).values()]
                   if path.exists())
    if found:
        raise TrainError(f"TrainConfig.work_dir {work_dir} already holds a run ({', '.join(found[:4])}): pass "
                         "TrainConfig.resume to continue it, or choose an empty folder")
    try:
        check_replaceable(work_dir / LOG_NAME, "TrainConfig.work_dir holds")
    except OutputError as error:
        raise TrainError(f"{error} (a fresh run starts its own {LOG_NAME})") from None
    return (work_dir / LOG_NAME).is_file()


class WorkDirLock:
    """``work_dir/.isanet.lock`` (the owner's pid and host) for as long as one run writes in the folder: a
    second run there would interleave its log and checkpoints with the first. A lock whose process is gone
    (killed, machine restarted) is stale and taken over."""

    NAME = ".isanet.lock"

    def __init__(self, work_dir: Path):
        self.path = Path(work_dir) / self.NAME
        self.held = False
        self.made_folder = False

    def acquire(self) -> WorkDirLock:
        self.made_folder = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):  # a stale lock is removed once, then taken like a fresh one
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner[0] == os.getpid() and owner[1] == socket.gethostname():
                    raise TrainError(f"TrainConfig.work_dir {self.path.parent} is in use by another run in this "
                                     "same process (a Trainer that was not closed: call its close(), or restart the "
                                     "kernel)") from None
                if owner is not None:
                    raise TrainError(f"TrainConfig.work_dir {self.path.parent} is in use by another run (pid "
                                     f"{owner[0]} on {owner[1]}, {self.path.name}); wait for it to end, or use "
                                     "another folder") from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(handle, "w") as file:
                file.write(f"{os.getpid()} {socket.gethostname()}\n")
            self.held = True
            clean_stale_temporaries(self.path.parent)  # what a run killed mid-save left behind
            return self
        raise TrainError(f"TrainConfig.work_dir {self.path.parent}: could not take {self.path.name} (another run is "
                         "starting)")

    def _owner(self) -> tuple[int, str] | None:
        """``(pid, host)`` of a live owner, or None when the lock is stale (or unreadable: half-written by a
        process killed while taking it)."""
        try:
            pid_text, host = self.path.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        if host != socket.gethostname():
            return pid, host  # another machine (a shared disk): its process cannot be checked from here
        return (pid, host) if process_alive(pid) else None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
            if self.made_folder:  # a run refused before writing anything leaves no empty folder behind
                with contextlib.suppress(OSError):  # not empty: the run wrote there
                    self.path.parent.rmdir()


def find_resume_checkpoint(work_dir: Path) -> Path:
    """The newest checkpoint: the highest ``iter_N.pth`` (each one is whole, being written atomically; an
    interrupt between writing it and re-pointing ``latest.pth`` leaves ``latest.pth`` one behind), else
    ``latest.pth``; a clear error when the folder has neither."""
    numbered = iteration_checkpoints(work_dir)
    if numbered:
        return numbered[max(numbered)]
    if (work_dir / LATEST_NAME).is_file():
        return work_dir / LATEST_NAME
    raise TrainError(f"TrainConfig.resume: no checkpoint in {work_dir} (expected {LATEST_NAME} or iter_N.pth); "
                     "start a fresh run without TrainConfig.resume")


# ---- RNG states (plain containers, so that weights_only loading accepts them) ----

def capture_rng() -> dict:
    """torch (CPU and every CUDA device), numpy's global generator and python's ``random``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Put back what :func:`capture_rng` saved (CUDA states only where this machine has the devices)."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


# ---- checkpoints ----

def _link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` atomically: hard link (free) or copy, then rename. A
    ``target`` that is itself a second name of a numbered checkpoint in the folder is unlinked first: that loses
    nothing, whoever changed the file since (otherwise the output guard decides)."""
    if target.is_file() and not target.is_symlink():
        same = target.lstat()
        if any((info.st_dev, info.st_ino) == (same.st_dev, same.st_ino)
               for info in map(Path.lstat, iteration_checkpoints(target.parent).values())):
            target.unlink()
    with atomic_path(target) as temporary:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)


def write_checkpoint(model: nn.Module, work_dir: Path, iteration: int, meta: dict, keep: int | None = None,
                     **extra) -> Path:
    """``work_dir/iter_{iteration}.pth`` (atomically, mmseg's layout) and ``latest.pth`` pointing at it; with
    ``keep``, only the newest ``keep`` numbered files the kit wrote stay (mmengine's ``max_keep_ckpts``); an
    ``iter_N.pth`` of your own there is never removed. Weights holding NaN or inf are refused before anything
    is written or removed: the last good checkpoint stays."""
    try:
        check_finite(model.state_dict(), f"the weights after iteration {iteration}")
    except CheckpointError as error:
        raise TrainError(f"{error}; not saved, the earlier checkpoints in {work_dir} are kept") from None
    path = save_checkpoint(model, work_dir / f"iter_{iteration}.pth", meta, **extra)
    _link_or_copy(path, work_dir / LATEST_NAME)
    if keep is not None:
        ours = {number: file for number, file in iteration_checkpoints(work_dir).items() if written_by_kit(file)}
        for old in sorted(ours)[:-keep]:
            ours[old].unlink(missing_ok=True)
    return path


def read_resume_checkpoint(path: Path) -> dict:
    """A checkpoint this trainer wrote, checked for the parts resuming needs."""
    content = read_checkpoint(path)
    missing = [key for key in ("meta", "state_dict", "optimizer", "sampler", "rng") if key not in content]
    if missing or "iter" not in content.get("meta", {}):
        raise TrainError(f"TrainConfig.resume: {path} is not a training checkpoint of isanet (missing "
                         f"{', '.join(missing) or 'meta.iter'}); use it with TrainConfig.init to start a new run "
                         "from it")
    return content


def apply_init(model: nn.Module, path: str | os.PathLike) -> str:
    """Load ``TrainConfig.init``: a whole ISANet checkpoint (classifier re-initialised when the classes differ), or an
    ImageNet ResNet backbone (``backbone.*`` keys or bare ResNet keys). Returns what was done, in words. The
    file is read once: its keys decide which, and the same weights are loaded."""
    try:
        checkpoint = Checkpoint.read(path)
        state = checkpoint.state_dict
        if any(key.startswith(("decode_head.", "auxiliary_head.")) for key in state):
            report = load_checkpoint(model, checkpoint, reinit_classifier=True)
            classes = (f"; classifier re-initialised for {model.num_classes} classes "
                       f"({', '.join(report.reinitialised)})" if report.reinitialised else "")
            return f"init: whole model from {path}{classes}"
        if any(key.startswith(("backbone.", "stem.", "layer1.")) for key in state):
            report = load_checkpoint(model, checkpoint, backbone_only=True)
            ignored = f"; ignored {', '.join(report.ignored)}" if report.ignored else ""
            return f"init: backbone only from {path} (heads keep their fresh initialisation){ignored}"
    except CheckpointError as error:
        raise TrainError(f"TrainConfig.init: {error}") from None
    raise TrainError(f"TrainConfig.init {path}: neither an ISANet checkpoint (decode_head.* keys) nor a ResNet "
                     f"backbone (backbone.* or stem.*/layer1.* keys); its first keys: {', '.join(list(state)[:4])}")


# ---- where a run stands ----

@dataclass
class RunState:
    """What one run trains on and where it stands: the resolved config, the process group and device, the
    work folder and its lock, the data, the model (``model`` may be DDP-wrapped, ``bare_model`` never is),
    the iteration and sample position it starts from, and the messages to print before it starts."""

    config: TrainConfig
    entry: ZooEntry
    dist: DistContext
    device: torch.device
    work_dir: Path
    stream: TrainStream
    val_set: SegDataset | None  # None when the run never evaluates
    eval_settings: TestSettings
    model: nn.Module
    bare_model: nn.Module
    start_iter: int = 0
    position: int = 0  # the global sample position at ``start_iter`` (see isanet.engine.loader)
    resumed_from: Path | None = None
    init_report: str = ""
    messages: list[str] = field(default_factory=list)
    lock: WorkDirLock | None = None

    def close(self) -> None:
        """Leave the process group and free the work folder for the next run."""
        if self.lock is not None:
            self.lock.release()
        self.dist.close()

    def checkpoint_content(self, optimisation_state: dict, iteration: int) -> tuple[dict, dict]:
        """``(meta, extra)`` of the checkpoint after ``iteration``: mmengine's fields plus what resume needs
        (``optimisation_state``: what :meth:`isanet.engine.run_setup.Optimisation.state` gives for ``iteration``)."""
        config = self.config
        position = self.position + (iteration - self.start_iter) * config.batch_size * self.dist.world_size
        reader = self.stream.dataset
        meta = {"iter": iteration, "epoch": self.stream.order.epoch(position), "seed": config.seed,
                "config": plain(asdict(config)), "recipe": config.recipe, "zoo_name": self.entry.name,
                "world_size": self.dist.world_size,
                "dataset_meta": {"classes": list(reader.CLASSES), "palette": [list(c) for c in reader.PALETTE]},
                "time": time.strftime("%Y%m%d_%H%M%S"), "isanet_version": _version()}
        extra = {**optimisation_state, "rng": capture_rng(),
                 "sampler": {"position": position, "seed": config.seed, "batch_size": config.batch_size,
                             "world_size": self.dist.world_size, "num_samples": len(reader)}}
        return meta, extra


def _version() -> str:
    from isanet import __version__

    return __version__
