"""``torch.hub`` entry point: an ISANet (Huang et al., "Interlaced Sparse Self-Attention for Semantic
Segmentation", arXiv:1907.12273) from a checkout of this repository, weights loaded when a checkpoint is given::

    model = torch.hub.load("path/to/isanet", "isanet", name="isanet_r50-d8_4xb4-20k_voc12aug-512x512",
                           checkpoint="data/checkpoints/....pth", source="local")

No weights are downloaded here (``isanet download NAME`` fetches a published file, hash-checked); the returned
model is in eval mode when weights were loaded, in train mode (freshly initialised) otherwise.
"""

from __future__ import annotations

import os

dependencies = ["torch", "numpy", "cv2", "PIL", "tqdm"]


def isanet(name: str | None = None, checkpoint: str | None = None, **overrides):
    """An ``ISANet``: the architecture of zoo entry ``name`` (1.x or legacy 0.x name; ``overrides`` change
    :class:`isanet.ISANetConfig` fields, e.g. ``depth=18``), with the weights of ``checkpoint`` when given.

    With a checkpoint, the number of classes comes from its classifier, so a model fine-tuned on your own data
    loads under its zoo name; without ``name`` the architecture is the one the checkpoint's meta records
    (files written by ``isanet train`` or :func:`isanet.save_checkpoint`). Weights are read with
    ``weights_only=True`` and must fit exactly (one-line :class:`isanet.CheckpointError` otherwise).
    """
    from isanet import build_model
    from isanet.io.checkpoint import Checkpoint, load_checkpoint, load_model

    for argument, value in (("name", name), ("checkpoint", checkpoint)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"isanet hub: {argument}= must be a string (a zoo name or a file path), "
                            f"got {type(value).__name__} {value!r}")

    if checkpoint is None:
        if name is None:
            raise ValueError("isanet hub: give name= (a zoo name, see `isanet zoo`) or checkpoint= (a weights file)")
        return build_model(name, **overrides)
    if name is None and overrides:
        raise ValueError(f"isanet hub: {sorted(overrides)} need name= (the checkpoint's meta decides the "
                         "architecture when no name is given)")
    weights = Checkpoint.read(checkpoint)  # once: the class count and the weights come from the same read
    if name is None:
        return load_model(weights).eval()
    num_classes = overrides.pop("num_classes", None)
    num_classes = weights.num_classes if num_classes is None else num_classes  # 0 is refused, not replaced
    model = build_model(name, num_classes=num_classes, **overrides)
    load_checkpoint(model, weights)
    return model.eval()
