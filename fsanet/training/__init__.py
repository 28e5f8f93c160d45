"""Training: the paper's recipe (:mod:`fsanet.training.loop`), canonical-format data
(:mod:`fsanet.training.data`), the authors' augmentation (:mod:`fsanet.training.augment`) and
``python -m fsanet train`` (:mod:`fsanet.training.cli`)."""

from fsanet.training.data import PoseData, open_dataset
from fsanet.training.loop import TrainResult, TrainSettings, evaluate, train

__all__ = ["PoseData", "TrainResult", "TrainSettings", "evaluate", "open_dataset", "train"]
