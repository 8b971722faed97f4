"""A faster copy of a model for inference: ``torch.compile`` with Inductor's weight freezing, fp32 or bf16.

Freezing (Inductor's ``freezing`` option) treats the eval-mode weights as constants: BatchNorm is folded, the
convolution weights are prepacked once for oneDNN, and the pointwise ops around them are fused into the
generated kernels. That is PyTorch's supported replacement for ``torch.utils.mkldnn`` prepacking (TorchScript,
deprecated), and it works under bf16 autocast too (measured in ``benchmarks/README.md``).

How the compile cost is handled:

* The option is passed to this one ``torch.compile`` call (``options=``), never set globally.
* Each distinct input shape is compiled once, statically (slide windows and one data set's test scale recur,
  so they compile once); the first call of a shape prints how long its compile took. After ``max_sizes``
  shapes, further new shapes run the uncompiled (folded) copy with one line saying so: a bounded number of
  compiles, and no silent slowdown from recompiling per image. Inductor's on-disk cache (``/tmp/torchinductor_
  USER``) makes a second process's compile of the same model and shape much shorter.
* Where compile is unavailable (no C++ compiler for Inductor's CPU code, a Python Dynamo does not support) or a
  compile fails, one warning says why and the older path runs: BatchNorm folded and, in fp32 on CPU, the
  backbone prepacked through ``torch.utils.mkldnn`` (:class:`BlockedBackbone`, 1.4x on R-50 here).
"""

from __future__ import annotations

import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn

from isanet.models.fold import fold_batchnorm
from isanet.runtime import autocast

#: How many distinct input shapes one compiled copy compiles for before new shapes run uncompiled.
MAX_SIZES = 4
#: Dynamo's recompile limit during our compiles: its count is per code object, shared by every compiled copy
#: in a process (fp32 and bf16 rows of a bench, the tests), while the bound that matters is ``max_sizes``.
RECOMPILE_LIMIT = 64
#: The ``torch.compile`` backend. The test suite sets Dynamo's ``"eager"`` backend where it only checks the
#: wiring, because an Inductor compile takes tens of seconds on a small CPU.
BACKEND = "inductor"
#: C++ compilers Inductor can use for its CPU kernels (it runs ``$CXX`` or one of these).
CXX_NAMES = ("g++", "c++", "clang++")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class BlockedBackbone(nn.Module):
    """A (BatchNorm-folded) backbone with its weights prepacked for oneDNN, taking and returning ordinary
    tensors: the input is converted to the blocked layout once, the stage outputs back once each."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        with warnings.catch_warnings():  # torch.utils.mkldnn is built on TorchScript, deprecated but still shipped
            warnings.simplefilter("ignore", DeprecationWarning)
            from torch.utils import mkldnn

            self.inner = mkldnn.to_mkldnn(backbone)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [stage.to_dense() for stage in self.inner(x.float().to_mkldnn())]


def blocked_layout_available(device: str | torch.device = "cpu") -> bool:
    return torch.device(device).type == "cpu" and torch.backends.mkldnn.is_available()


def blocked_copy(model: nn.Module, precision: str = "fp32", device: str | torch.device = "cpu") -> nn.Module:
    """The fallback: BatchNorm folded, and for fp32 on CPU the blocked backbone (bf16 autocast and the blocked
    layout do not mix). Same logits within 1e-5 relative in fp32."""
    fast = fold_batchnorm(model).to(device)
    if precision == "fp32" and blocked_layout_available(device) and hasattr(fast, "backbone"):
        fast.backbone = BlockedBackbone(fast.backbone)
    return fast


def compile_unavailable_reason(device: str | torch.device = "cpu") -> str | None:
    """Why ``torch.compile`` cannot run here (None when it can): Dynamo's Python support, and on CPU a C++
    compiler for Inductor's generated code."""
    import os

    if not torch._dynamo.is_dynamo_supported():
        return f"torch.compile does not support Python {sys.version.split()[0]}"
    names = (os.environ["CXX"],) if os.environ.get("CXX") else CXX_NAMES
    if torch.device(device).type == "cpu" and not any(shutil.which(name) for name in names):
        return f"Inductor's CPU code needs a C++ compiler and none of {', '.join(names)} is on PATH"
    return None


def _as_fp32(out: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """A model's logits, or a backbone's list of stage outputs, in fp32."""
    return out.float() if isinstance(out, torch.Tensor) else [stage.float() for stage in out]


class _Run(nn.Module):
    """What is compiled: the folded model's output (logits, or a backbone's stages) under the precision's
    autocast, as fp32. The autocast is inside the compiled call so that Inductor sees (and freezes) the bf16
    casts of the weights."""

    def __init__(self, model: nn.Module, precision: str, device: torch.device):
        super().__init__()
        self.model, self.precision, self.device_type = model, precision, device.type

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        with autocast(self.precision, self.device_type):
            return _as_fp32(self.model(x))


class CompiledModel(nn.Module):
    """An eval-only compiled copy of a model (see the module docstring): the same call, its output (logits, or
    a backbone's stage outputs) in fp32.

    ``compiled_shapes`` lists the input shapes compiled so far and ``compile_seconds`` what each compile took
    (its first call: the wait a user sees); ``bench model`` turns that into a break-even
    image count. ``backend`` is ``torch.compile``'s (default :data:`BACKEND`). Not trainable (weights frozen,
    BatchNorm folded); save checkpoints from the original."""

    def __init__(self, model: nn.Module, precision: str = "fp32", device: str | torch.device = "cpu",
                 max_sizes: int = MAX_SIZES, backend: str | Callable | None = None,
                 log: Callable[[str], None] = _stderr) -> None:
        super().__init__()
        super().train(False)
        device = torch.device(device)
        self.run = _Run(fold_batchnorm(model).to(device).eval(), precision, device)
        self.precision, self.max_sizes, self.log = precision, max_sizes, log
        self.backend = backend or BACKEND
        self.align_corners = getattr(model, "align_corners", False)
        self.compile_seconds: dict[tuple[int, ...], float] = {}
        self.failed: str | None = None  # why compiling stopped (a failed compile): then everything runs eager
        self.over_bound = False  # whether a shape past max_sizes has come (and been reported)
        options = {"freezing": True} if self.backend == "inductor" else None
        # a plain attribute, not a submodule: the compiled wrapper shares self.run's weights
        object.__setattr__(self, "compiled", torch.compile(self.run, backend=self.backend, options=options,
                                                           dynamic=False))

    def train(self, mode: bool = True) -> CompiledModel:
        """Always eval: the weights are frozen constants and there is no BatchNorm left to train."""
        return super().train(False)

    @property
    def compiled_shapes(self) -> list[tuple[int, ...]]:
        return list(self.compile_seconds)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        shape = tuple(x.shape)
        with torch.no_grad():
            if self.failed is not None:
                return self.run(x)
            if shape in self.compile_seconds:
                return self.compiled(x)
            if len(self.compile_seconds) >= self.max_sizes:
                if not self.over_bound:  # said once, at the first shape over the bound
                    self.log(f"input {'x'.join(map(str, shape))}: {self.max_sizes} input sizes are compiled "
                             "already; new sizes run uncompiled (resize to one test scale to stay compiled)")
                    self.over_bound = True
                return self.run(x)
            return self._compile_for(x, shape)

    def _compile_for(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor | list[torch.Tensor]:
        """The first call of a new shape: compile (timed, reported once), or fall back for good if it fails."""
        started = time.perf_counter()
        try:  # Dynamo's recompile limit counts every copy's shapes (one code object): ours is max_sizes
            with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
                out = self.compiled(x)
        except Exception as error:  # any compile failure: the eager copy gives the same logits
            root = error
            while (inner := getattr(root, "inner_exception", None) or root.__cause__) is not None:
                root = inner  # Dynamo wraps the backend's error: name the one that happened
            self.failed = f"{type(root).__name__}: {(str(root).splitlines() or [''])[0]}"
            warnings.warn(f"torch.compile failed ({self.failed}); running uncompiled", stacklevel=3)
            return self.run(x)
        seconds = self.compile_seconds[shape] = time.perf_counter() - started
        frozen = ", weights frozen" if self.backend == "inductor" else ""
        backend = getattr(self.backend, "__name__", self.backend)
        self.log(f"compiled for input {'x'.join(map(str, shape))} ({self.precision}, {backend}{frozen}) in "
                 f"{seconds:.1f} s; once per input size, at most {self.max_sizes} sizes")
        return out


def optimize_for_inference(model: nn.Module, precision: str = "fp32", device: str | torch.device = "cpu",
                           max_sizes: int = MAX_SIZES, log: Callable[[str], None] = _stderr) -> nn.Module:
    """A copy of ``model`` for eval-mode inference in ``precision`` (already resolved, see
    :func:`isanet.runtime.resolve_precision`) on ``device``; ``model`` is untouched.

    A :class:`CompiledModel` (``torch.compile`` with weight freezing; compile time printed through ``log``), or,
    where compile is unavailable, the folded and (fp32, CPU) blocked copy, with one warning saying why. fp32
    logits equal the original's within 1e-5 relative; bf16 ones as autocast's do."""
    reason = compile_unavailable_reason(device)
    if reason is None:
        return CompiledModel(model, precision, device, max_sizes, log=log)
    warnings.warn(f"optimize: {reason}; using BatchNorm folding and the oneDNN-prepacked backbone instead",
                  stacklevel=2)
    return blocked_copy(model, precision, device)


