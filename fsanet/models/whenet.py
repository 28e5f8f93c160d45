"""WHENet (Zhou & Gregson, BMVC 2020) as a :class:`~fsanet.models.base.PoseModel`.

EfficientNet-B0 without top, global average pooling, and three linear heads of bin logits: yaw over the
full circle in 120 bins of 3 degrees, pitch and roll in 66 bins of 3 degrees. The angle is the softmax
expectation of the bin index, ``yaw = 3 * E[i] - 180`` and ``pitch, roll = 3 * E[i] - 99`` (WHENet's own
code). The backbone is timm's ``tf_efficientnet_b0``: TensorFlow's "same" padding on the stride-2
convolutions and BatchNorm eps 1e-3, as the Keras original (either difference costs degrees).

Forward contract as every model here: raw RGB in [0, 255] at 224x224; the ``/255`` and ImageNet mean/std of
WHENet's pre-processing happen inside. The weights come from the authors' Keras file through
:mod:`fsanet.models.whenet_convert`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fsanet.models.base import PoseModel
from fsanet.models.factory import register_architecture

ARCHITECTURE = "whenet"
BACKBONE = "tf_efficientnet_b0"
IMAGE_SIZE = 224
FEATURES = 1280
YAW_BINS, PITCH_ROLL_BINS = 120, 66
BIN_DEGREES = 3.0
YAW_OFFSET, PITCH_ROLL_OFFSET = 180.0, 99.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# WHENet's demo crop (``demo.py``): the detector box padded by a tenth of its height above and below and a
# fifth of its width left and right, sequentially, not squared, resized to 224x224 with cv2's linear filter.
WHENET_RECIPE = {
    "box": "whenet",
    "size": IMAGE_SIZE,
    "interpolation": "linear",
    "color": "rgb",
    "minmax": False,
}


def whenet_config(**extra: Any) -> dict[str, Any]:
    """The config of WHENet: its heads, input size and pre-processing recipe."""
    return {
        "architecture": ARCHITECTURE,
        "name": "whenet",
        "method": "WHENet",
        "backbone": BACKBONE,
        "yaw_bins": YAW_BINS,
        "pitch_roll_bins": PITCH_ROLL_BINS,
        "image_size": IMAGE_SIZE,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "input_channel_order": "rgb",
        "preprocess": dict(WHENET_RECIPE),
        **extra,
    }


def _efficientnet(backbone: str) -> nn.Module:
    from fsanet.utils.torchvision_compat import ensure_torchvision

    ensure_torchvision()  # timm imports torchvision, whose native ops are missing on CPU wheels
    import timm

    # num_classes=0: timm's global average pooling and no classifier, the Keras model's "no top" + pooling.
    return timm.create_model(backbone, pretrained=False, num_classes=0)


def bin_expectation(logits: torch.Tensor, offset: float) -> torch.Tensor:
    """``BIN_DEGREES * sum(softmax(logits) * index) - offset``: WHENet's angle from its bin logits."""
    index = torch.arange(logits.shape[-1], device=logits.device, dtype=logits.dtype)
    return (logits.softmax(dim=-1) * index).sum(dim=-1) * BIN_DEGREES - offset


class WHENet(PoseModel):
    """EfficientNet-B0 + yaw/pitch/roll bin heads; ``forward`` returns ``(N, 3)`` degrees."""

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        if config["backbone"] != BACKBONE:  # the heads and the converter are EfficientNet-B0's
            raise ValueError(f"WHENet's backbone is {BACKBONE}, not {config['backbone']!r}")
        self.backbone = _efficientnet(config["backbone"])
        self.yaw = nn.Linear(FEATURES, int(config["yaw_bins"]))
        self.pitch = nn.Linear(FEATURES, int(config["pitch_roll_bins"]))
        self.roll = nn.Linear(FEATURES, int(config["pitch_roll_bins"]))
        # Raw [0, 255] in: x/255 - mean over std == (x - 255 mean) / (255 std).
        self.register_buffer("mean", torch.tensor(config["mean"]).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(config["std"]).view(1, 3, 1, 1) * 255, persistent=False)

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three heads' bin logits for raw RGB ``x`` in [0, 255]."""
        features = self.backbone((x - self.mean) / self.std)
        return self.yaw(features), self.pitch(features), self.roll(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        yaw, pitch, roll = self.logits(x)
        return torch.stack(
            [
                bin_expectation(yaw, YAW_OFFSET),
                bin_expectation(pitch, PITCH_ROLL_OFFSET),
                bin_expectation(roll, PITCH_ROLL_OFFSET),
            ],
            dim=1,
        )


register_architecture(ARCHITECTURE, WHENet)
