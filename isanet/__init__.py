"""isanet: Interlaced Sparse Self-Attention (ISANet) in plain PyTorch, faithful to mmsegmentation's numbers.

The most used pieces are importable from here; each lives in a module of its own (see the README).
"""

from isanet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from isanet.inference import predict
from isanet.model import ISANet
from isanet.zoo import build_model, get_entry, list_models

__all__ = ["CheckpointError", "ISANet", "build_model", "get_entry", "list_models", "load_checkpoint", "predict",
           "save_checkpoint"]
__version__ = "0.1.0"
