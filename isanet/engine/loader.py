"""The trainer's data side: a deterministic sample stream, its sharding over processes, and the process group.

Exact resume needs the data to be a pure function of *where* training is, not of how it got there. Every
sample drawn during a run has a global position ``k`` (0, 1, 2, ... across epochs and processes): its image is
``dataset[permutation(seed, k // n)[k % n]]`` and its augmentation draws from ``numpy.random.default_rng((seed,
k))``. Nothing depends on worker processes, on how many batches came before, or on a global RNG, so a
resumed run that restarts the stream at the saved position sees the very same pixels. Processes shard the
stream the way mmengine's ``InfiniteSampler`` does (rank ``r`` of ``W`` takes positions ``r, r + W, ...``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from isanet.data.transforms import TrainTransform


class SampleOrder:
    """Which data set index sits at each global stream position: a fresh seeded permutation per epoch."""

    def __init__(self, num_samples: int, seed: int):
        if num_samples < 1:
            raise ValueError("the training split is empty")
        self.num_samples, self.seed = num_samples, seed
        self._epoch, self._order = -1, np.empty(0, dtype=np.int64)  # a one-epoch cache (plain: picklable)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng((self.seed, epoch)).permutation(self.num_samples)
        return self._order

    def epoch(self, position: int) -> int:
        return position // self.num_samples

    def index(self, position: int) -> int:
        return int(self._permutation(self.epoch(position))[position % self.num_samples])


class TrainStream(Dataset):
    """``stream[k]`` = the augmented ``(image, label)`` tensors at global position ``k`` (see module doc)."""

    def __init__(self, dataset, transform: TrainTransform, seed: int):
        self.dataset, self.transform, self.seed = dataset, transform, seed
        self.order = SampleOrder(len(dataset), seed)

    def __len__(self) -> int:  # the stream is endless; this is one epoch, for information only
        return len(self.dataset)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.dataset[self.order.index(position)]
        return self.transform(sample["image"], sample["label"], np.random.default_rng((self.seed, position)))


class StreamBatches(Sampler[list[int]]):
    """The positions of this process's batches, ``num_batches`` of them starting at global ``start``.

    Batch ``b`` of rank ``r`` holds positions ``start + b*B*W + j*W + r`` for ``j < B``: the global batch
    ``b`` is the ``B*W`` consecutive positions after ``start + b*B*W``, dealt round-robin to the ranks.
    """

    def __init__(self, start: int, num_batches: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.start, self.num_batches, self.batch_size = start, num_batches, batch_size
        self.rank, self.world_size = rank, world_size

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in range(self.num_batches):
            first = self.start + batch * self.global_batch + self.rank
            yield [first + j * self.world_size for j in range(self.batch_size)]


def _quiet_worker(_: int) -> None:
    """Data workers use one OpenCV thread each: N workers x all cores of threads only thrash."""
    import cv2

    cv2.setNumThreads(1)


def build_loader(stream: TrainStream, batches: StreamBatches, num_workers: int, pin_memory: bool) -> DataLoader:
    """A loader over the stream; its own seeded generator keeps it from drawing on torch's global RNG
    (which would shift the dropout masks of a resumed run). Workers are spawned, not forked: a forked
    child inherits OpenCV's (and OpenMP's) thread pools in a locked state and can hang on its first call."""
    return DataLoader(stream, batch_sampler=batches, num_workers=num_workers, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(stream.seed),
                      worker_init_fn=_quiet_worker if num_workers else None,
                      multiprocessing_context="spawn" if num_workers else None)


def worker_errors_in_one_line(loader: Iterable) -> Iterator:
    """Iterate ``loader``; an error raised in a data worker comes back as the same error type with the
    worker's own message (torch wraps it in "Caught X in DataLoader worker process N" and a 20-line
    traceback, which buries the one line that names the bad file)."""
    try:
        yield from loader
    except Exception as error:
        text = str(error.args[0]) if error.args else ""
        if not text.startswith("Caught ") or "Original Traceback" not in text:
            raise
        last = [line for line in text.splitlines() if line.strip()][-1]
        name, _, rest = last.partition(": ")  # "package.module.ErrorType: message"
        message = rest if rest and name.split(".")[-1] == type(error).__name__ else last
        try:
            clean = type(error)(message)
        except Exception:  # an error type that cannot be rebuilt from a message: keep torch's
            raise error from None
        raise clean from None


@dataclass
class DistContext:
    """This process's place in a ``torchrun`` launch (or a single process), and the collectives we need."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, use_cuda: bool) -> DistContext:
        """Join the process group that ``torchrun`` describes in ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``
        (NCCL on GPUs, gloo on CPUs); a plain run is a world of one."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        owns = not dist.is_initialized()
        if owns:
            if use_cuda:
                torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=60))
        return cls(rank, world_size, local_rank, owns)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean of each value over the processes (every process gets it)."""
        if not self.enabled or not values:
            return values
        backend_cuda = dist.get_backend() == "nccl"
        tensor = torch.tensor(list(values.values()), dtype=torch.float64,
                              device=f"cuda:{self.local_rank}" if backend_cuda else "cpu")
        dist.all_reduce(tensor)
        return dict(zip(values, (tensor / self.world_size).tolist()))

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
