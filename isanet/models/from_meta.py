"""The architecture a checkpoint's ``meta`` records, checked, and the weight shapes it needs: the file alone decides.

Two generations of kit-written files are read. Today's store the whole
:class:`~isanet.models.config.ISANetConfig` in ``meta["model_config"]``. Files written before it name a zoo
entry (``meta["zoo_name"]``) with the trainer's ``meta["config"]["model_overrides"]`` and the class names in
``meta["dataset_meta"]``; they must keep loading, so both are understood here. Published mmseg files record
neither, and the caller names their zoo entry instead.

A meta is untrusted data: :func:`config_from_meta` gives an :class:`ISANetConfig` (every size bounded) or one
``ValueError`` line, and :func:`meta_state_dict` the shape of every weight that config needs, from a model built
on the ``meta`` device (shapes only, nothing allocated), so that a file's weights are checked against its meta
before the real model is built.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from isanet.models.config import ISANetConfig
from isanet.models.segmentor import ISANet
from isanet.models.zoo import model_config


def config_from_meta(meta: Mapping) -> ISANetConfig | None:
    """The checked architecture ``meta`` records, or None when it records none (a published file: the caller
    then needs a zoo name, and says so naming the file). A record that is not a valid config is a ValueError
    that names what is wrong."""
    stored = meta.get("model_config")
    if stored:
        if not isinstance(stored, Mapping):
            raise ValueError(f"meta's model_config must be a dict of ISANetConfig fields, got {type(stored).__name__}")
        return ISANetConfig.from_dict(dict(stored))
    if meta.get("zoo_name"):
        overrides = _field(_field(meta, "config"), "model_overrides") or {}
        if not isinstance(overrides, Mapping):
            raise ValueError(f"meta's config.model_overrides must be a dict, got {type(overrides).__name__}")
        classes = _field(_field(meta, "dataset_meta"), "classes")
        try:
            return model_config(str(meta["zoo_name"]), len(classes) if isinstance(classes, (list, tuple)) and
                                classes else None, **overrides)
        except (KeyError, TypeError) as error:  # an unknown zoo name, a field name that is not a string
            reason = error.args[0] if error.args else type(error).__name__  # KeyError's str() adds quotes
            raise ValueError(f"meta's zoo_name and model_overrides name no model: {reason}") from None
    return None


def _field(record, name: str):
    """``record[name]`` when ``record`` is a dict that has it, else None (a meta may hold anything)."""
    return record.get(name) if isinstance(record, Mapping) else None


def _field(record, name: str):
    """``record[name]`` when ``record`` is a dict that has it, else None (a meta may hold anything)."""
    return record.get(name) if isinstance(record, Mapping) else None


def model_from_meta(meta: Mapping) -> ISANet | None:
    """A randomly initialised ``ISANet`` with the architecture ``meta`` records (:func:`config_from_meta`), or
    None when it records none."""
    config = config_from_meta(meta)
    return None if config is None else ISANet(config)


def meta_state_dict(config: ISANetConfig) -> dict[str, torch.Tensor]:
    """``ISANet(config).state_dict()`` as ``meta`` tensors (keys, shapes and dtypes, no data): nothing is
    allocated, so even a config that would not fit in memory is checked in milliseconds."""
    with torch.device("meta"):
        return ISANet(config).state_dict()
