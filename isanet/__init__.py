"""isanet: Interlaced Sparse Self-Attention (ISANet) in plain PyTorch, faithful to mmsegmentation's numbers.

The most used pieces are importable from here; each lives in a subpackage of its own (see ARCHITECTURE.md).
"""

from isanet.evaluation.inference import predict
from isanet.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from isanet.models import ISANet, ISANetConfig, build_model, get_entry, list_models, model_config
from isanet.models.optimize import optimize_for_inference

__all__ = ["CheckpointError", "ISANet", "ISANetConfig", "build_model", "get_entry", "list_models",
           "load_checkpoint", "model_config", "optimize_for_inference", "predict", "save_checkpoint"]
__version__ = "0.1.0"
