"""Training: the paper's recipe, canonical-format data and the authors' augmentation."""

from fsanet.training.data import PoseData, open_dataset
from fsanet.training.loop import TrainResult, TrainSettings, evaluate, recompute_batchnorm, train

__all__ = [
    "PoseData",
    "TrainResult",
    "TrainSettings",
    "evaluate",
    "open_dataset",
    "recompute_batchnorm",
    "train",
]
