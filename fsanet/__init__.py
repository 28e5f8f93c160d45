"""FSA-Net head-pose estimation in PyTorch, numerically the authors' model.

>>> import fsanet
>>> model = fsanet.create_model("fsanet_fusion.300w_lp", pretrained=True)  # doctest: +SKIP
>>> angles = model(x)  # x: (N, 3, 64, 64) RGB in [0, 255] -> (N, 3) [yaw, pitch, roll] degrees
"""

from fsanet.errors import FSANetError, InvalidImageError, InvalidWeightsError, WeightsUnavailableError
from fsanet.hub import from_pretrained, push_to_hub, save_pretrained, validate_state_dict, weights_sha256
from fsanet.models import PoseModel, build_model, register_architecture
from fsanet.registry import create_model, list_models, load_model

__all__ = [
    "FSANetError",
    "InvalidImageError",
    "InvalidWeightsError",
    "PoseModel",
    "WeightsUnavailableError",
    "build_model",
    "create_model",
    "from_pretrained",
    "list_models",
    "load_model",
    "pretrained_names",
    "push_to_hub",
    "register_architecture",
    "save_pretrained",
    "validate_state_dict",
    "weights_sha256",
]


def pretrained_names() -> list[str]:
    """Every ``name.tag`` with the authors' weights (same as ``list_models(pretrained=True)``)."""
    return list_models(pretrained=True)
