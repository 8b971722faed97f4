"""Peak memory of one call, on CPU and CUDA, with an optional cap that refuses an op before it runs.

* **On CUDA** it is the caching allocator's ``max_memory_allocated()`` after ``reset_peak_memory_stats()``,
  minus what was allocated before the call (the input, the weights): the bytes the call itself needed at its
  worst moment.
* **On CPU** there are no allocator statistics, and process RSS is noisy (allocator caching, other threads).
  :class:`LiveTensorTracker` is a ``TorchDispatchMode`` that sees every aten op run during the call, counts the
  bytes of each new tensor storage the ops create, and subtracts them when the storage is freed (a weak
  reference's callback). Its peak is the largest number of live bytes at any point, intermediates freed before
  the end included. It is deterministic and exact for what it counts (tensor storages; not the scratch buffers
  a kernel allocates and frees inside one op), so one ``1000 x 1000`` float32 tensor is exactly 4,000,000 bytes.
* **A memory cap** (``cap_bytes``) lets the CPU tracker refuse an op *before* it runs: each op is first run on
  ``meta`` tensors (shapes only) to learn the size of its outputs; if they would lift the live bytes over the
  cap, :class:`MemoryCapExceeded` is raised instead of the machine swapping or the process being killed.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten, tree_map


class MemoryCapExceeded(MemoryError):
    """An op would have lifted the live tensor bytes over the tracker's cap; it was not run."""


class LiveTensorTracker(TorchDispatchMode):
    """Counts the bytes of tensor storages created while active and still alive; keeps the maximum.

    Storages that existed before (weights, inputs) are the baseline and are not counted; views and in-place
    ops create no storage and add nothing. ``device`` restricts counting to one device type.
    """

    def __init__(self, device: str | torch.device = "cpu", cap_bytes: int | None = None):
        super().__init__()
        self.device_type = torch.device(device).type
        self.cap_bytes = cap_bytes
        self.live_bytes = 0
        self.peak_bytes = 0
        self._storages: dict[int, tuple[weakref.ref, int]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.cap_bytes is not None:
            needed = self.live_bytes + _new_output_bytes(func, args, kwargs, self.device_type)
            if needed > self.cap_bytes:
                raise MemoryCapExceeded(f"{func} would bring live tensor memory to {needed:,} bytes, over the "
                                        f"cap of {self.cap_bytes:,}")
        out = func(*args, **kwargs)
        # an output sharing an input's storage (a view, an in-place or out= op) is not a new allocation
        inputs = {key for key in map(_storage_key, tree_flatten((args, kwargs))[0]) if key is not None}
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor) and value.device.type == self.device_type:
                self._track(value, inputs)
        return out

    def _track(self, tensor: torch.Tensor, inputs: set[int]) -> None:
        key = _storage_key(tensor)
        if key is None:
            return
        storage = tensor.untyped_storage()
        nbytes = storage.nbytes()
        known = self._storages.get(key)
        if known is None:
            if key in inputs:  # aliases a storage from before the call: the baseline
                return
            self._storages[key] = (weakref.ref(storage, partial(self._freed, key)), nbytes)
            self._add(nbytes)
        elif known[1] != nbytes:  # resized in place
            self._storages[key] = (known[0], nbytes)
            self._add(nbytes - known[1])

    def _add(self, nbytes: int) -> None:
        self.live_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)

    def _freed(self, key: int, _ref: weakref.ref) -> None:
        entry = self._storages.pop(key, None)
        if entry is not None:
            self.live_bytes -= entry[1]


def _storage_key(value: Any) -> int | None:
    """Identity of a tensor's storage (``None`` for non-tensors and tensors without one, e.g. sparse)."""
    if not isinstance(value, torch.Tensor):
        return None
    try:
        return value.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError):
        return None


def _new_output_bytes(func, args, kwargs, device_type: str) -> int:
    """Bytes of the new storages ``func`` would create, learnt by running it on meta tensors (0 if unknown)."""
    inputs: list[torch.Tensor] = []

    def to_meta(value):
        if isinstance(value, torch.Tensor) and value.device.type == device_type:
            meta = torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
            inputs.append(meta)
            return meta
        return value

    try:
        with _disable_current_modes():  # a shape probe, not part of the call: no mode (e.g. a FLOP counter) sees it
            out = func(*tree_map(to_meta, args), **tree_map(to_meta, kwargs))
    except Exception:  # no meta kernel, or an op that needs data: cannot predict, let it run
        return 0
    seen = {t.untyped_storage()._cdata for t in inputs}
    total = 0
    for value in tree_flatten(out)[0]:
        if isinstance(value, torch.Tensor):
            key = value.untyped_storage()._cdata
            if key not in seen:
                seen.add(key)
                total += value.untyped_storage().nbytes()
    return total


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(fn: Callable[[], Any], device: str | torch.device = "cpu", cap_bytes: int | None = None) -> int:
    """Peak bytes ``fn()`` needs over what was allocated before it (see the module docstring for how).

    ``cap_bytes`` applies on CPU only (a GPU reports its own out-of-memory). Raises
    :class:`MemoryCapExceeded` or ``torch.cuda.OutOfMemoryError``; :func:`measure` turns them into rows.
    """
    device = torch.device(device)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    tracker = LiveTensorTracker(device, cap_bytes)
    with tracker:
        fn()
    return tracker.peak_bytes
