"""FSA-Net head-pose estimation in PyTorch, numerically the authors' model.

>>> import fsanet
>>> model = fsanet.create_model("fsanet_fusion.300w_lp", pretrained=True)  # doctest: +SKIP
>>> angles = model(x)  # x: (N, 3, 64, 64) RGB in [0, 255] -> (N, 3) [yaw, pitch, roll] degrees
"""

from fsanet.data.geometry import geodesic_distance, rotation_matrix
from fsanet.data.imageio import load_image
from fsanet.detect.detectors import Detection, create_detector, list_detectors
from fsanet.errors import FSANetError, InvalidImageError, InvalidWeightsError, WeightsUnavailableError
from fsanet.models.base import PoseModel
from fsanet.models.catalogue import build_model, list_models, validate_state_dict
from fsanet.models.family import register_family
from fsanet.models.hub import push_to_hub, save_pretrained
from fsanet.models.identity import ModelIdentity, model_identity
from fsanet.models.pretrained import create_model
from fsanet.models.specs import load_model
from fsanet.pipeline.drawing import draw_poses
from fsanet.pipeline.estimate import FacePose, PoseEstimator, PoseResult, estimate, to_json
from fsanet.runtime.optimize import optimize_for_inference

from_pretrained = PoseModel.from_pretrained  # any family; ``SomeFamily.from_pretrained`` only that one
__all__ = [
    "Detection",
    "ModelIdentity",
    "FSANetError",
    "FacePose",
    "InvalidImageError",
    "InvalidWeightsError",
    "PoseEstimator",
    "PoseModel",
    "PoseResult",
    "WeightsUnavailableError",
    "build_model",
    "create_detector",
    "create_model",
    "draw_poses",
    "estimate",
    "from_pretrained",
    "geodesic_distance",
    "list_detectors",
    "list_models",
    "load_image",
    "load_model",
    "model_identity",
    "optimize_for_inference",
    "pretrained_names",
    "push_to_hub",
    "register_family",
    "rotation_matrix",
    "save_pretrained",
    "to_json",
    "validate_state_dict",
]


def pretrained_names(include_unusable: bool = False) -> list[str]:
    """Every ``name.tag`` with usable authors' weights (same as ``list_models(pretrained=True)``)."""
    return list_models(pretrained=True, include_unusable=include_unusable)
