"""The network: ResNet-V1c-D8 backbone, dense and interlaced self-attention, the heads, ISANet and its zoo."""

from isanet.models.config import ISANetConfig
from isanet.models.segmentor import ISANet
from isanet.models.zoo import build_model, get_entry, list_models, model_config

__all__ = ["ISANet", "ISANetConfig", "build_model", "get_entry", "list_models", "model_config"]
