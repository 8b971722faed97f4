"""Reading and writing checkpoints in mmsegmentation's format, safely and atomically.

An mmseg checkpoint is a ``torch.save``d dict ``{"meta": {...}, "state_dict": {...}, "optimizer": ...}``.
We also accept a raw state dict and DDP's ``module.``-prefixed keys. Files are read with
``torch.load(weights_only=True)``: a checkpoint is data, and a pickle that would run code is refused before any
of it runs. Every failure is a :class:`CheckpointError` that names the file and says what is wrong.

A load reads the file once: :meth:`Checkpoint.read` takes its bytes, hashes them and unpickles them, and the
resulting value (meta, weights, digest) is what every later step receives, so a model built from the meta, the
weights put into it and the digest that says which file it was all come from the same bytes.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from isanet.io.atomic import atomic_path
from isanet.io.digest import sha256_hex
from isanet.io.files import not_a_regular_file
from isanet.models.config import ISANetConfig
from isanet.models.from_meta import config_from_meta, meta_state_dict
from isanet.models.segmentor import ISANet
from isanet.models.zoo import entries_with_classes, model_config

CLASSIFIER_KEYS = re.compile(r"^(decode_head|auxiliary_head)\.conv_seg\.(weight|bias)$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, with the reason."""


@dataclass
class LoadReport:
    """What :func:`load_checkpoint` did: which keys it skipped or left to their fresh initialisation."""

    path: str
    meta: dict = field(default_factory=dict)
    reinitialised: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"loaded {self.path}"]
        if self.reinitialised:
            lines.append(f"  re-initialised (class count differs): {', '.join(self.reinitialised)}")
        if self.ignored:
            lines.append(f"  ignored checkpoint keys: {', '.join(self.ignored[:6])}"
                         + (" ..." if len(self.ignored) > 6 else ""))
        return "\n".join(lines)


def _safe_globals() -> list:
    """numpy objects that mmseg's own checkpoints keep in their meta data; rebuilding them runs no user code."""
    try:  # numpy >= 1.26 (numpy 1.26's np._core has the submodule only once it is imported by name)
        from numpy._core import multiarray
    except ImportError:  # numpy 1.24, 1.25
        from numpy.core import multiarray
    dtypes = [type(np.dtype(name)) for name in ("bool", "uint8", "int32", "int64", "float32", "float64")]
    return [np.dtype, np.ndarray, multiarray.scalar, multiarray._reconstruct, *dtypes]


#: How a torch.save file begins: a zip archive (the format since PyTorch 1.6) or a pickle (protocol 2 or later).
CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")


def _file_bytes(path: Path) -> bytes:
    """The whole content of checkpoint ``path``, refusing a missing or empty file by name."""
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path}: is a folder, not a checkpoint file")
    problem = not_a_regular_file(path)  # a FIFO would block the read, /dev/zero never end
    if problem:
        raise CheckpointError(f"checkpoint {path}: {problem}")
    data = path.read_bytes()
    if not data:
        raise CheckpointError(f"checkpoint {path}: the file is empty")
    if not data.startswith(CHECKPOINT_MAGIC):
        raise CheckpointError(f"checkpoint {path}: not a PyTorch checkpoint, not a pickle/zip checkpoint at all "
                              "(its first bytes are neither torch.save's zip nor a pickle)")
    return data


def _unpickle(data: bytes, path: Path, map_location: str | torch.device) -> dict:
    """The one ``torch.load`` of a checkpoint's bytes, as data only; :class:`CheckpointError` for anything
    else."""
    allowed = _safe_globals()  # outside the try: a fault of ours is not the file's
    try:
        with torch.serialization.safe_globals(allowed):
            obj = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            raise CheckpointError(
                f"checkpoint {path}: refused — it holds objects that would run code when unpickled "
                f"(only tensors and plain containers are accepted; nothing from it was executed)") from None
        raise CheckpointError(f"checkpoint {path}: not a PyTorch checkpoint ({error})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        # torch's zip reader explains a cut-short file in a paragraph of miniz internals: a few words instead
        reason = ("its zip archive is cut short or damaged" if "PytorchStreamReader" in str(error)
                  else str(error).splitlines()[0])
        raise CheckpointError(f"checkpoint {path}: unreadable — truncated or not a PyTorch checkpoint "
                              f"({reason})") from None
    except Exception as error:
        raise CheckpointError(f"checkpoint {path}: not a PyTorch checkpoint ({type(error).__name__})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict of tensors, got {type(obj).__name__}")
    return obj


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Every top-level entry of a checkpoint file, loaded as data only (a training checkpoint's optimiser,
    sampler and RNG states for a resume); a load of weights reads a :class:`Checkpoint` instead."""
    path = Path(path)
    return _unpickle(_file_bytes(path), path, map_location)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file read once: its ``meta``, its finite weights under the model's key names, and the
    sha256 of the bytes they came from (what OpenMMLab's file names carry the first 8 hex of)."""

    path: Path
    meta: dict
    state_dict: dict[str, torch.Tensor]
    sha256: str

    @classmethod
    def read(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
        """Read, hash and check ``path`` with one ``torch.load(weights_only=True)``; any problem is one
        :class:`CheckpointError` line naming the file."""
        path = Path(path)
        data = _file_bytes(path)
        state, meta = extract_state_dict(_unpickle(data, path, map_location), path)
        return cls(path, meta, state, sha256_hex((data,)))

    @property
    def num_classes(self) -> int | None:
        """The number of classes of the classifier (None when there is none, e.g. a backbone)."""
        return _num_classes_in(self.state_dict)


def _as_checkpoint(source: str | os.PathLike | Checkpoint, map_location: str | torch.device = "cpu") -> Checkpoint:
    """``source`` itself when it was read already (``map_location`` then changes nothing: loading copies the
    weights onto the model's device anyway), else the file it names, read now."""
    return source if isinstance(source, Checkpoint) else Checkpoint.read(source, map_location)


def extract_state_dict(obj: dict, path: str | os.PathLike = "<checkpoint>") -> tuple[dict, dict]:
    """``(state_dict, meta)`` from an mmseg checkpoint, a raw state dict, or a DDP one (``module.`` keys)."""
    meta = obj.get("meta", {}) if isinstance(obj.get("meta", {}), dict) else {}
    state = obj.get("state_dict", obj.get("model", obj))
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"checkpoint {path}: no state dict inside (keys: {sorted(obj)[:8]})")
    tensors = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"checkpoint {path}: holds no tensors (keys: {sorted(state)[:8]})")
    if all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module."):]: value for key, value in tensors.items()}
    check_finite(tensors, f"checkpoint {path}")
    return tensors, meta


def check_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Refuse weights holding NaN or infinity (a diverged run, a corrupted file): they would not fail, but
    predict garbage that still gives a normal-looking score. Names the first bad tensor."""
    for key, value in tensors.items():
        if value.is_floating_point() or value.is_complex():
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                raise CheckpointError(f"{what}: tensor {key} holds {bad} non-finite value(s) (NaN or inf) of "
                                      f"{value.numel()}; the weights are broken (a diverged training?) and would "
                                      "give meaningless predictions")


def _num_classes_in(state: dict) -> int | None:
    weight = state.get("decode_head.conv_seg.weight")
    return None if weight is None else int(weight.shape[0])


def _backbone_depth(keys) -> int | None:
    blocks = {int(m.group(1)) for key in keys if (m := re.match(r"(?:backbone\.)?layer3\.(\d+)\.", key))}
    if not blocks:
        return None
    count = max(blocks) + 1
    return {2: 18, 6: 50, 23: 101}.get(count)


def _mismatch_error(path, model_state: dict, state: dict) -> CheckpointError:
    missing = sorted(set(model_state) - set(state))
    unexpected = sorted(set(state) - set(model_state))
    shapes = sorted(key for key in set(model_state) & set(state) if model_state[key].shape != state[key].shape)
    ours, theirs = _backbone_depth(model_state), _backbone_depth(state)
    depth = f" The checkpoint is a ResNet-{theirs}, the model a ResNet-{ours}." if ours != theirs and theirs else ""
    parts = [f"{label} ({len(keys)}): {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
             for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
             if keys]
    return CheckpointError(f"checkpoint {path} does not fit the model.{depth} " + "; ".join(parts))


def load_checkpoint(model: nn.Module, source: str | os.PathLike | Checkpoint, *, reinit_classifier: bool = False,
                    backbone_only: bool = False, map_location: str | torch.device = "cpu") -> LoadReport:
    """Load an mmseg-format (or raw / DDP) checkpoint, a file or one already read, into ``model``, strictly.

    ``reinit_classifier``: when the checkpoint's number of classes differs from the model's, keep the model's
    fresh classifiers (``conv_seg``) and load everything else — fine-tuning to a new label set.
    ``backbone_only``: load an ImageNet backbone checkpoint (``backbone.*`` keys, or bare ResNet keys as in
    ``open-mmlab://resnet50_v1c``) into ``model.backbone``, ignoring its ``fc`` classifier.
    """
    checkpoint = _as_checkpoint(source, map_location)
    report = LoadReport(str(checkpoint.path), checkpoint.meta)
    if backbone_only:
        return _load_backbone(model, checkpoint.state_dict, checkpoint.path, report)
    state, report.reinitialised = fitted_state(checkpoint, model.state_dict(), reinit_classifier)
    model.load_state_dict(state, strict=True)
    return report


def fitted_state(checkpoint: Checkpoint, model_state: dict[str, torch.Tensor],
                 reinit_classifier: bool = False) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The checkpoint's weights to load into a model whose state dict is ``model_state`` and the classifier keys
    left to the model (``reinit_classifier``: a checkpoint with another class count, fine-tuning), or the
    :class:`CheckpointError` that says why they do not fit (class count, missing, unexpected or misshapen keys).
    Only ``model_state``'s keys and shapes are read, so a model built on the ``meta`` device checks a file
    before any real weight is allocated."""
    path, state = checkpoint.path, checkpoint.state_dict
    ours, theirs = _num_classes_in(model_state), checkpoint.num_classes
    reinitialised = []
    if ours is not None and theirs is not None and ours != theirs:
        if not reinit_classifier:
            fits = ", ".join(entries_with_classes(ours)) or "none"
            raise CheckpointError(
                f"checkpoint {path} has {theirs} classes but the model has {ours}. Zoo entries with {ours} "
                f"classes: {fits}. To fine-tune from it, load with reinit_classifier=True (CLI: --init).")
        reinitialised = sorted(key for key in state if CLASSIFIER_KEYS.match(key))
        state = {**state, **{key: model_state[key] for key in reinitialised}}
    if set(state) != set(model_state) or any(state[k].shape != v.shape for k, v in model_state.items()):
        raise _mismatch_error(path, model_state, state)
    return state, reinitialised


def _load_backbone(model: nn.Module, state: dict, path, report: LoadReport) -> LoadReport:
    if any(key.startswith("backbone.") for key in state):
        state = {key[len("backbone."):]: value for key, value in state.items() if key.startswith("backbone.")}
    report.ignored = sorted(key for key in state if key.startswith("fc."))
    state = {key: value for key, value in state.items() if not key.startswith("fc.")}
    backbone_state = model.backbone.state_dict()
    if set(state) != set(backbone_state) or any(state[k].shape != v.shape for k, v in backbone_state.items()):
        raise _mismatch_error(path, {f"backbone.{k}": v for k, v in backbone_state.items()},
                              {f"backbone.{k}": v for k, v in state.items()})
    model.backbone.load_state_dict(state, strict=True)
    return report


def load_model(source: str | os.PathLike | Checkpoint, name: str | None = None,
               map_location: str = "cpu") -> nn.Module:
    """An ``ISANet`` with the weights of checkpoint ``source`` (a file, or one already read).

    The architecture is zoo entry ``name`` when given (published files); otherwise it is the one the file's
    ``meta`` records (:func:`isanet.models.from_meta.config_from_meta`). Either way the weights' shapes are
    checked against it before the model is built (:func:`build_checked`).
    """
    checkpoint = _as_checkpoint(source, map_location)
    return build_checked(checkpoint, model_config(name) if name is not None else None)


def load_model_for(path: str | os.PathLike, name: str, map_location: str = "cpu",
                   num_classes: int | None = None) -> tuple[nn.Module, dict]:
    """The model in checkpoint ``path`` and the file's ``meta``: the architecture the file records when it has
    one (files the kit wrote: a sample fine-tune, a model fine-tuned to your own classes), else zoo entry
    ``name``'s (published files), with ``num_classes`` classes when given."""
    checkpoint = Checkpoint.read(path, map_location)
    if checkpoint.meta.get("model_config"):
        return build_checked(checkpoint), checkpoint.meta
    return build_checked(checkpoint, model_config(name, num_classes=num_classes)), checkpoint.meta


def build_checked(checkpoint: Checkpoint, config: ISANetConfig | None = None) -> ISANet:
    """``ISANet(config)`` (default: the config the file's meta records) with the checkpoint's weights. A file is
    untrusted: its meta is checked as a config (every size bounded) and its weights' shapes against that
    config's, from a model built on the ``meta`` device, before the real model is allocated; each problem is one
    :class:`CheckpointError` line naming the file."""
    path = checkpoint.path
    if config is None:
        try:
            config = config_from_meta(checkpoint.meta)
        except ValueError as error:
            raise CheckpointError(f"checkpoint {path}: its meta is not a model this kit can build: {error}") from None
        if config is None:
            raise CheckpointError(f"checkpoint {path}: its meta names no model configuration or zoo model; pass "
                                  "the zoo name to use")
    fitted_state(checkpoint, meta_state_dict(config))
    model = ISANet(config)
    load_checkpoint(model, checkpoint)
    return model


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically: a reader never sees half a checkpoint. Saved through a Python file,
    so that a failed write is the OSError that says why (torch's own writer says only "unexpected pos")."""
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        try:
            torch.save(obj, file)
        except RuntimeError as error:
            if isinstance(error.__context__, OSError):  # the write that failed inside torch's writer
                raise error.__context__ from None
            raise
    return Path(path)


def save_checkpoint(model: nn.Module, path: str | os.PathLike, meta: dict | None = None, **extra) -> Path:
    """Write ``{"meta", "state_dict", **extra}`` (mmseg's layout, CPU tensors) atomically to ``path``.

    An ``ISANet``'s :class:`~isanet.models.config.ISANetConfig` goes into ``meta["model_config"]``, so that
    :func:`load_model` can rebuild the architecture from the file alone."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    meta = dict(meta or {})
    config = getattr(getattr(model, "module", model), "config", None)  # a DDP wrapper holds the model in .module
    if isinstance(config, ISANetConfig):
        meta["model_config"] = config.to_dict()
    return atomic_save({"meta": meta, "state_dict": state, **extra}, path)
