"""ONNX export with a dynamic image size, and its check against PyTorch with ONNX Runtime.

The graph comes from ``torch.onnx.export(..., dynamo=True)``: ``torch.export`` traces the model with the
height and width as *symbols*, so ISA's padding (``ceil(h / loc_h) * loc_h - h`` in
:class:`isanet.models.isa.Partition`) and the regrouping reshapes become shape arithmetic inside the
graph (ONNX ``Shape``/``Div``/``Mul`` nodes) instead of constants of the example size. mmdeploy exports ISANet
only with static shapes; here one file serves every image size from :data:`MIN_SIZE` up.

Why a minimum of 65 pixels: ``torch.export`` specialises dimensions of size 1, and below 65 pixels the
1/8-resolution map is at most 8 wide, so ISA has a single block column (``glb_w == 1``); the exported graph
assumes at least two. The batch is fixed at 1 (one picture at a time, the way the kit predicts).

``onnx`` and ``onnxruntime`` are the optional ``[export]`` extra; the error says so when they are missing. An
``ISANet`` whose example or check forward would pass the memory cap (:mod:`isanet.models.footprint`) is refused
before anything is traced or run.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from isanet.io.atomic import atomic_path
from isanet.models import footprint
from isanet.models.config import ISANetConfig

MIN_SIZE, MAX_SIZE = 65, 8192
INPUT_NAME, OUTPUT_NAME = "image", "logits"
EXAMPLE_SIZE = (512, 512)
#: The sizes :func:`check_onnx` compares at: 385x517's 1/8 map (49x65) is one ``down_factor`` 8 does not divide.
CHECK_SIZES = ((512, 512), (385, 517), (256, 768))


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"{module} is not installed: pip install 'isanet[export]' (onnx, onnxscript, "
                          "onnxruntime)") from None


def require_export(check: bool = True) -> None:
    """Refuse, before a model is loaded, an export the installed packages cannot make (or, with ``check``,
    cannot check in ONNX Runtime): one ImportError line naming the ``[export]`` extra."""
    for module in ("onnx", "onnxscript") + ("onnxruntime",) * check:
        _require(module)


def check_memory(model: nn.Module, sizes: tuple[tuple[int, int], ...],
                 memory_cap_bytes: int | None = footprint.DEFAULT_CAP_BYTES, option: str = "memory_cap_bytes") -> None:
    """Refuse (:class:`~isanet.models.footprint.MemoryCapError`), before anything is traced or run, an ``ISANet``
    whose forward at one of ``sizes`` would pass ``memory_cap_bytes`` (None: no cap); ``option`` names the cap."""
    config = getattr(model, "config", None)
    if isinstance(config, ISANetConfig):
        for height, width in sizes:
            footprint.forward(config, height, width, what=f"the export's {height}x{width} forward").check(
                memory_cap_bytes, option)


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Inside, ``torch.onnx.export`` prints nothing: its step-by-step progress lines, its deprecation chatter and
    its "no torchvision" registration notes are dropped; failures still raise."""
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def export_onnx(model: nn.Module, path: str | os.PathLike, example_size: tuple[int, int] = EXAMPLE_SIZE,
                memory_cap_bytes: int | None = footprint.DEFAULT_CAP_BYTES) -> Path:
    """Write ``model`` (eval mode, fp32, CPU) to ``path`` as ONNX taking a ``1 x 3 x H x W`` normalised
    ``image`` of any ``H, W`` in ``[MIN_SIZE, MAX_SIZE]`` and returning ``1 x K x H x W`` ``logits``.
    The file appears only when complete (atomic rename). A ``kernel="flex"`` model is refused: FlexAttention
    has no ONNX form, and the same weights export with ``kernel="matmul"``; so is one whose ``example_size``
    forward would pass ``memory_cap_bytes`` (:func:`check_memory`)."""
    if getattr(getattr(model, "config", None), "kernel", None) == "flex":
        raise ValueError("model: kernel='flex' has no ONNX form; rebuild it with kernel='matmul' or 'sdpa' (the "
                         "same weights and logits) to export")
    _require("onnxscript")
    if min(example_size) < MIN_SIZE:
        raise ValueError(f"example_size {example_size}: both sides must be at least {MIN_SIZE}")
    check_memory(model, (tuple(example_size),), memory_cap_bytes)
    model = copy.deepcopy(model).eval().cpu().float()  # the caller's model stays where and as it was
    height = torch.export.Dim("height", min=MIN_SIZE, max=MAX_SIZE)
    width = torch.export.Dim("width", min=MIN_SIZE, max=MAX_SIZE)
    example = torch.randn(1, 3, *example_size)
    with atomic_path(path, suffix=".onnx") as temporary, quiet_exporter():
        program = torch.onnx.export(model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes={"x": {2: height, 3: width}}, dynamo=True, verbose=False)
        program.save(str(temporary))  # weights inside the one file (no external-data side file)
    return Path(path)


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An ONNX Runtime CPU session for ``path`` (``threads`` intra-op threads; default: PyTorch's count)."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_runner(session):
    """``x -> logits`` through an ONNX Runtime session, as a function of torch tensors (so that
    :func:`isanet.evaluation.inference.slide_logits` and the benchmarks can call it like a model)."""
    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.detach().cpu().contiguous().numpy()})[0])
    return run


def check_onnx(model: nn.Module, path: str | os.PathLike, sizes: tuple[tuple[int, int], ...] = CHECK_SIZES,
               seed: int = 0, memory_cap_bytes: int | None = footprint.DEFAULT_CAP_BYTES) -> list[dict]:
    """ONNX Runtime against PyTorch fp32 on a random image of each size: ``max|ort - torch| / max|torch|`` per
    size (:data:`CHECK_SIZES` by default); refused first when a size's forward would pass ``memory_cap_bytes``."""
    check_memory(model, sizes, memory_cap_bytes)
    run = onnx_runner(onnx_session(path))
    generator = torch.Generator().manual_seed(seed)
    rows = []
    model = copy.deepcopy(model).eval().cpu().float()
    for height, width in sizes:
        x = torch.randn(1, 3, height, width, generator=generator)
        with torch.no_grad():
            reference = model(x)
        out = run(x)
        if out.shape != reference.shape:
            raise RuntimeError(f"ONNX output {tuple(out.shape)} != PyTorch {tuple(reference.shape)} "
                               f"at {height}x{width}")
        error = ((out - reference).abs().max() / reference.abs().max()).item()
        rows.append({"size": [height, width], "max_rel_error": error})
    return rows
