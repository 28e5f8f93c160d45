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

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from fsanet.data.recipes import register_box_rule, validated_recipe
from fsanet.models.base import PoseModel
from fsanet.models.family import (
    Converter,
    ModelConfig,
    ModelEntry,
    Pretrained,
    TrainingSet,
    WeightsFile,
    register_family,
)

ARCHITECTURE = "whenet"
BACKBONE = "tf_efficientnet_b0"
IMAGE_SIZE = 224
FEATURES = 1280
YAW_BINS, PITCH_ROLL_BINS = 120, 66
BIN_DEGREES = 3.0
YAW_OFFSET, PITCH_ROLL_OFFSET = 180.0, 99.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PAPER = "Zhou & Gregson, WHENet: Real-time Fine-Grained Estimation for Wide Range Head Pose, BMVC 2020"
# The upstream repository's WHENet.h5 at a pinned commit (BSD-3-Clause, weights included).
DEFAULT_MIRROR = "https://github.com/Ascend-Research/HeadPoseEstimation-WHENet/raw/a0d7bdfb5e2ac97ae6b0ae3eef79fdcf4075ab82"
WEIGHTS = WeightsFile(
    "WHENet.h5",
    "8f8bcf924447f7126666cf2c725a633ec2b9ae06afa4699064d3242a02401f59",
    "WHENET_OFFICIAL_MIRROR",
    DEFAULT_MIRROR,
)
TRAINED_ON = TrainingSet(
    "300W-LP + CMU Panoptic", "protocol 1", "300W-LP + CMU Panoptic: ordinary photos", "many people, any yaw"
)
BOX_RULE = "whenet"


def whenet_box(box: Sequence[float], frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """WHENet demo's padding of ``(x1, y1, x2, y2)``, as a slice ``image[y1:y2, x1:x2]``.

    Sequential as in the demo: each updated coordinate feeds the next one's padding; each is clipped to the
    image (``frame_size`` = (width, height)) and truncated with ``int()`` at the end.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = frame_size
    y1 = max(0.0, y1 - abs(y1 - y2) / 10)
    y2 = min(float(height), y2 + abs(y1 - y2) / 10)
    x1 = max(0.0, x1 - abs(x1 - x2) / 5)
    x2 = min(float(width), x2 + abs(x1 - x2) / 5)
    return int(x1), int(y1), int(x2), int(y2)


register_box_rule(BOX_RULE, whenet_box)

# WHENet's demo crop (``demo.py``): the detector box padded by a tenth of its height above and below and a
# fifth of its width left and right, sequentially, not squared, resized to 224x224 with cv2's linear filter.
WHENET_RECIPE = {
    "box": BOX_RULE,
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


Finite = Annotated[float, Field(allow_inf_nan=False)]


class WHENetConfig(ModelConfig):
    architecture: Literal["whenet"]
    input_channel_order: Literal["rgb"] = "rgb"
    backbone: Literal["tf_efficientnet_b0"]
    yaw_bins: Literal[120]
    pitch_roll_bins: Literal[66]
    image_size: Literal[224]
    mean: Annotated[list[Finite], Field(min_length=3, max_length=3)]
    std: Annotated[
        list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(min_length=3, max_length=3)
    ]


def _recognises(path: Path) -> bool:
    from fsanet.models.whenet_convert import is_whenet_file

    return is_whenet_file(path)


def _convert(path: Path, name: str | None = None):
    from fsanet.models.whenet_convert import convert_whenet_h5

    return convert_whenet_h5(path, name)


@register_family(
    architecture=ARCHITECTURE,
    method="WHENet",
    schema=WHENetConfig,
    recipe=lambda config: validated_recipe(WHENET_RECIPE),
    models=(
        ModelEntry(
            "whenet",
            "WHENet",
            whenet_config,
            (Pretrained("300w_lp_panoptic", TRAINED_ON, "bsd-3-clause", file=WEIGHTS),),
            about="EfficientNet-B0 on 224x224 crops, yaw over the full circle",
        ),
    ),
    converter=Converter(_recognises, _convert),
    paper=PAPER,
    tags=("head-pose-estimation", "whenet"),
)
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
