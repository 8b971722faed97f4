"""The architecture a checkpoint's ``meta`` records, built as a fresh ``ISANet``: the file alone decides.

Two generations of kit-written files are read. Today's store the whole
:class:`~isanet.models.config.ISANetConfig` in ``meta["model_config"]``. Files written before it name a zoo
entry (``meta["zoo_name"]``) with the trainer's ``meta["config"]["model_overrides"]`` and the class names in
``meta["dataset_meta"]``; they must keep loading, so both are understood here. Published mmseg files record
neither, and the caller names their zoo entry instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from isanet.models.config import ISANetConfig
from isanet.models.segmentor import ISANet
from isanet.models.zoo import build_model


def model_from_meta(meta: Mapping) -> ISANet | None:
    """A randomly initialised ``ISANet`` with the architecture ``meta`` records, or None when it records none
    (a published file: the caller then needs a zoo name, and says so naming the file)."""
    if meta.get("model_config"):
        return ISANet(ISANetConfig.from_dict(meta["model_config"]))
    if meta.get("zoo_name"):
        overrides = dict((meta.get("config") or {}).get("model_overrides") or {})
        classes = (meta.get("dataset_meta") or {}).get("classes")
        return build_model(meta["zoo_name"], num_classes=len(classes) if classes else None, **overrides)
    return None
