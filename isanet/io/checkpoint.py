"""Reading and writing checkpoints in mmsegmentation's format, safely and atomically.

An mmseg checkpoint is a ``torch.save``d dict ``{"meta": {...}, "state_dict": {...}, "optimizer": ...}``.
We also accept a raw state dict and DDP's ``module.``-prefixed keys. Files are read with
``torch.load(weights_only=True)``: a checkpoint is data, and a pickle that would run code is refused before any
of it runs. Every failure is a :class:`CheckpointError` that names the file and says what is wrong.
"""

from __future__ import annotations

import hashlib
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
from isanet.models.config import ISANetConfig
from isanet.models.segmentor import ISANet
from isanet.models.zoo import build_model, entries_with_classes

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
    core = np._core if hasattr(np, "_core") else np.core
    dtypes = [type(np.dtype(name)) for name in ("bool", "uint8", "int32", "int64", "float32", "float64")]
    return [np.dtype, np.ndarray, core.multiarray.scalar, core.multiarray._reconstruct, *dtypes]


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint file as data only; raise :class:`CheckpointError` for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path}: the file is empty")
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            raise CheckpointError(
                f"checkpoint {path}: refused — it holds objects that would run code when unpickled "
                f"(only tensors and plain containers are accepted; nothing from it was executed)") from None
        raise CheckpointError(f"checkpoint {path}: not a PyTorch checkpoint ({error})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"checkpoint {path}: unreadable — truncated or not a PyTorch checkpoint "
                              f"({str(error).splitlines()[0]})") from None
    except Exception as error:
        raise CheckpointError(f"checkpoint {path}: not a PyTorch checkpoint ({type(error).__name__})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict of tensors, got {type(obj).__name__}")
    return obj


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


def classes_in_checkpoint(path: str | os.PathLike) -> int | None:
    """The number of classes of checkpoint ``path``'s classifier (None when it has none, e.g. a backbone)."""
    return _num_classes_in(extract_state_dict(read_checkpoint(path), path)[0])


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


def load_checkpoint(model: nn.Module, path: str | os.PathLike, *, reinit_classifier: bool = False,
                    backbone_only: bool = False, map_location: str | torch.device = "cpu") -> LoadReport:
    """Load an mmseg-format (or raw / DDP) checkpoint into ``model``, strictly.

    ``reinit_classifier``: when the checkpoint's number of classes differs from the model's, keep the model's
    fresh classifiers (``conv_seg``) and load everything else — fine-tuning to a new label set.
    ``backbone_only``: load an ImageNet backbone checkpoint (``backbone.*`` keys, or bare ResNet keys as in
    ``open-mmlab://resnet50_v1c``) into ``model.backbone``, ignoring its ``fc`` classifier.
    """
    state, meta = extract_state_dict(read_checkpoint(path, map_location), path)
    report = LoadReport(str(path), meta)
    if backbone_only:
        return _load_backbone(model, state, path, report)
    model_state = model.state_dict()
    ours, theirs = _num_classes_in(model_state), _num_classes_in(state)
    if ours is not None and theirs is not None and ours != theirs:
        if not reinit_classifier:
            fits = ", ".join(entries_with_classes(ours)) or "none"
            raise CheckpointError(
                f"checkpoint {path} has {theirs} classes but the model has {ours}. Zoo entries with {ours} "
                f"classes: {fits}. To fine-tune from it, load with reinit_classifier=True (CLI: --init).")
        report.reinitialised = sorted(key for key in state if CLASSIFIER_KEYS.match(key))
        state = {key: value for key, value in state.items() if key not in report.reinitialised}
        for key in report.reinitialised:
            state[key] = model_state[key]
    if set(state) != set(model_state) or any(state[k].shape != v.shape for k, v in model_state.items()):
        raise _mismatch_error(path, model_state, state)
    model.load_state_dict(state, strict=True)
    return report


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


def load_model(path: str | os.PathLike, name: str | None = None, map_location: str = "cpu") -> nn.Module:
    """An ``ISANet`` with the weights of checkpoint ``path``.

    The architecture is zoo entry ``name`` when given (published files); otherwise it is read from the file's
    ``meta``: the :class:`~isanet.models.config.ISANetConfig` that :func:`isanet.save_checkpoint` stores, or
    for files written before it, ``zoo_name``, the trainer's ``config.model_overrides`` and the number of
    classes in ``dataset_meta``.
    """
    path = Path(path)
    if name is not None:
        model = build_model(name)
    else:
        meta = read_checkpoint(path, map_location).get("meta", {}) or {}
        if meta.get("model_config"):
            model = ISANet(ISANetConfig.from_dict(meta["model_config"]))
        elif meta.get("zoo_name"):
            overrides = dict((meta.get("config") or {}).get("model_overrides") or {})
            classes = (meta.get("dataset_meta") or {}).get("classes")
            model = build_model(meta["zoo_name"], num_classes=len(classes) if classes else None, **overrides)
        else:
            raise CheckpointError(f"checkpoint {path}: its meta names no model configuration or zoo model; "
                                  "pass the zoo name to use")
    load_checkpoint(model, path, map_location=map_location)
    return model


def load_model_for(path: str | os.PathLike, name: str, map_location: str = "cpu",
                   num_classes: int | None = None) -> tuple[nn.Module, dict]:
    """The model in checkpoint ``path`` and the file's ``meta``: the architecture the file records when it has
    one (files the kit wrote: a sample fine-tune, a model fine-tuned to your own classes), else zoo entry
    ``name``'s (published files), with ``num_classes`` classes when given."""
    meta = read_checkpoint(path, map_location).get("meta") or {}
    if isinstance(meta, dict) and meta.get("model_config"):
        return load_model(path, map_location=map_location), meta
    model = build_model(name, num_classes=num_classes)
    load_checkpoint(model, path, map_location=map_location)
    return model, meta


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically: a reader never sees half a checkpoint."""
    with atomic_path(path) as temporary:
        torch.save(obj, temporary)
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


def state_dict_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict's keys and raw tensor bytes: names exact weights (e.g. a parity fixture's)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def random_state_dict(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic random weights for ``model``: the same seed gives the same bits on every machine.

    Used for sample checkpoints and for the parity test against mmseg. Draws are uniform because
    ``torch.rand`` is bit-identical across CPU instruction sets while ``torch.randn`` is not. The scales keep
    a deep ResNet's activations sane: He-scaled convs, BN near identity with non-trivial statistics.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape: torch.Size, std: float) -> torch.Tensor:  # zero mean, standard deviation ``std``
        return (torch.rand(shape, generator=generator) * 2 - 1) * (std * 3**0.5)

    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(value)
        elif key.endswith("running_var") or (key.endswith(".weight") and value.dim() == 1):  # BN scale/var
            state[key] = 0.25 + 0.5 * torch.rand(value.shape, generator=generator)
        elif key.endswith("running_mean") or key.endswith(".bias"):
            state[key] = uniform(value.shape, 0.1)
        else:
            state[key] = uniform(value.shape, (2.0 / value[0].numel()) ** 0.5)
    return state
