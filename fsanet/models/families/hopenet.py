"""HopeNet (Ruiz, Chong & Rehg, CVPRW 2018, "Fine-Grained Head Pose Estimation Without Keypoints").

A torchvision-style ResNet-50 (``Bottleneck``, ``[3, 4, 6, 3]``, the stride on the 3x3 conv), a 7x7 average
pool, and three linear heads of 66 bin logits, one per angle: ``[yaw, pitch, roll]``. The angle is the softmax
expectation of the bin index, ``3 * E[i] - 99`` (66 bins of 3 degrees, -99..+99), as the authors'
``test_hopenet.py`` computes it. Angles keep the authors' signs and order, those of the 300W-LP / AFLW2000
``Pose_Para`` labels, which are this project's: nothing is flipped.

Forward contract as every model here: raw RGB in [0, 255] at 224x224; the ``ToTensor`` + ImageNet
``Normalize`` of the authors' pre-processing happen inside. Its crop is the authors' benchmark crop
(``datasets.py``): the face box loosened (0.4 of its width on each side, 0.4 of its height above, 0.12
below, each side from the one before), then ``Resize(224)`` + ``CenterCrop(224)``, which keeps the central
square of the loose box's shorter side.

The weights are the authors' ``.pkl`` state dicts (``torch.save`` of PyTorch 0.2-era modules), read with
``torch.load(weights_only=True)``: every tensor lands in the module under its own name; the vestigial
``fc_finetune`` layer (its ``forward`` never uses it) and BatchNorm step counters are the only tensors left
out. The three released files are published on Google Drive with no checksum, so they are pinned by their
published location only: never downloaded, read only from the folder an operator fills
(``HOPENET_OFFICIAL_MIRROR``), their own sha256 recorded (see :class:`~fsanet.models.family.WeightsFile`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from fsanet.data.recipes import register_box_rule, validated_recipe
from fsanet.errors import InvalidWeightsError
from fsanet.models.base import PoseModel
from fsanet.models.families import _torch_checkpoint as checkpoint
from fsanet.models.family import (
    Converter,
    ModelEntry,
    Pretrained,
    Reported,
    TrainingSet,
    WeightsFile,
    register_family,
)
from fsanet.models.imagenet import ImageNetConfig, Normalise, imagenet_fields

ARCHITECTURE = "hopenet"
IMAGE_SIZE = 224
BLOCKS = (3, 4, 6, 3)  # ResNet-50
EXPANSION = 4
BINS = 66
BIN_DEGREES = 3.0
OFFSET = 99.0
HEADS = ("fc_yaw", "fc_pitch", "fc_roll")  # the order of the outputs: [yaw, pitch, roll]
VESTIGIAL = ("fc_finetune.weight", "fc_finetune.bias", "num_batches_tracked")

PAPER = "Ruiz, Chong & Rehg, Fine-Grained Head Pose Estimation Without Keypoints, CVPR Workshops 2018"
LICENCE = "apache-2.0"  # the authors' repository (code and released models)
# The three releases of the README of natanielruiz/deep-head-pose at f7bbb99 (2019-10-01): Google Drive links,
# no checksum published anywhere the project could find, so the files are pinned by location only.
MIRROR_ENV = "HOPENET_OFFICIAL_MIRROR"
README_AT_COMMIT = (
    "https://github.com/natanielruiz/deep-head-pose/blob/f7bbb9981c2953c2eca67748d6492a64c8243946/README.md"
)
RELEASES = {  # tag -> the authors' file
    "300w_lp_alpha1": "hopenet_alpha1.pkl",
    "300w_lp_alpha2": "hopenet_alpha2.pkl",
    "300w_lp_robust": "hopenet_robust_alpha1.pkl",
}
DRIVE_IDS = {
    "hopenet_alpha1.pkl": "1EJPu2sOAwrfuamTitTkw2xJ2ipmMsmD3",
    "hopenet_alpha2.pkl": "16OZdRULgUpceMKZV6U9PNFiigfjezsCY",
    "hopenet_robust_alpha1.pkl": "1m25PrSE7g9D2q2XJVMR6IA7RaCvWSzCR",
}
RELEASE_MAX_BYTES = 100 * 2**20  # 95.9 MB of tensors (ResNet-50, three heads, fc_finetune) + pickle
# One training set, three versions: what tells them apart ends the pickers' labels.
ABOUT_300W_LP = "many people, poses up to ±90°"
TRAINED_ON = {
    "300w_lp_alpha1": TrainingSet("300W-LP", "protocol 1", "300W-LP, α = 1: ordinary photos", ABOUT_300W_LP),
    "300w_lp_alpha2": TrainingSet("300W-LP", "protocol 1", "300W-LP, α = 2: ordinary photos", ABOUT_300W_LP),
    "300w_lp_robust": TrainingSet("300W-LP", "protocol 1", "300W-LP, robust: blurred video", ABOUT_300W_LP),
}
BOX_RULE = "hopenet"
LOOSE_SIDES, LOOSE_TOP, LOOSE_BOTTOM = 0.4, 0.4, 0.12  # 2k, 2k, 0.6k with the authors' k = 0.2


def _released(file_name: str) -> WeightsFile:
    return WeightsFile(
        file_name,
        None,
        MIRROR_ENV,
        "",
        max_bytes=RELEASE_MAX_BYTES,
        published=f"https://drive.google.com/open?id={DRIVE_IDS[file_name]} (linked from {README_AT_COMMIT})",
    )


# ------------------------------------------------------------------------------------ the authors' crop
def loose_crop(
    box: Sequence[float], frame_size: tuple[int, int], keep: float = 1.0
) -> tuple[int, int, int, int]:
    """The authors' AFLW2000 crop of face ``box`` (``x1, y1, x2, y2``), as the slice the network sees.

    ``datasets.py`` loosens the box side by side, each update feeding the next (as written), truncates it to
    integers for ``PIL.Image.crop``; ``Resize(S)`` + ``CenterCrop(224)`` then keep the central square of side
    ``keep * shorter side`` (``keep`` = 224 / S: 1 for HopeNet, 224/256 for 6DRepNet's benchmark). The frame
    (``frame_size`` = (width, height)) does not clip it: PIL pads what lies outside with black, as
    :func:`~fsanet.data.recipes.crop_face` does.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    x1 -= LOOSE_SIDES * abs(x2 - x1)
    y1 -= LOOSE_TOP * abs(y2 - y1)
    x2 += LOOSE_SIDES * abs(x2 - x1)
    y2 += LOOSE_BOTTOM * abs(y2 - y1)
    x1, y1, x2, y2 = int(x1), int(y1), int(x2), int(y2)
    side = max(1, round(keep * min(x2 - x1, y2 - y1)))
    left, top = round((x1 + x2 - side) / 2), round((y1 + y2 - side) / 2)
    return left, top, left + side, top + side


register_box_rule(BOX_RULE, loose_crop)

HOPENET_RECIPE = {
    "box": BOX_RULE,
    "size": IMAGE_SIZE,
    "interpolation": "area",
    "color": "rgb",
    "minmax": False,
}


def hopenet_config(**extra: Any) -> dict[str, Any]:
    """The config of HopeNet: ResNet-50, three 66-bin heads, 224x224 input, its crop."""
    return {
        "architecture": ARCHITECTURE,
        "name": "hopenet",
        "method": "HopeNet",
        "backbone": "resnet50",
        "bins": BINS,
        "image_size": IMAGE_SIZE,
        **imagenet_fields(),
        "preprocess": dict(HOPENET_RECIPE),
        **extra,
    }


class HopeNetConfig(ImageNetConfig):
    architecture: Literal["hopenet"]
    backbone: Literal["resnet50"]
    bins: Literal[66]
    image_size: Literal[224]  # the 7x7 average pool is the global pool at this size only


def bin_expectation(logits: torch.Tensor, offset: float, bin_degrees: float = BIN_DEGREES) -> torch.Tensor:
    """``bin_degrees * sum(softmax(logits) * index) - offset``: an angle from its bin logits (HopeNet's, and
    that of the binned families built on it)."""
    index = torch.arange(logits.shape[-1], device=logits.device, dtype=logits.dtype)
    return (logits.softmax(dim=-1) * index).sum(dim=-1) * bin_degrees - offset


# --------------------------------------------------------------------------------------------- network
class Bottleneck(nn.Module):
    """torchvision's ResNet ``Bottleneck`` (v1.5: the stride on the 3x3 conv), with its tensor names."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        width, out = planes, planes * EXPANSION
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
            if stride != 1 or inplanes != out
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(inplanes, planes, stride)]
    layers += [Bottleneck(planes * EXPANSION, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------------------- the authors' file
def _state(path: Path) -> dict[str, torch.Tensor] | None:
    state = checkpoint.read_state_dict(path)
    return state if state is not None and all(f"{head}.weight" in state for head in HEADS) else None


def is_hopenet_file(path: Path) -> bool:
    """Whether ``path`` is a HopeNet checkpoint: a torch state dict with the three bin heads."""
    return _state(path) is not None


def convert_hopenet(
    path: str | Path, name: str | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The authors' ``.pkl`` -> ``(config, state_dict)``: every tensor under its own name, checked against
    the module; ``fc_finetune`` (vestigial) and missing step counters (2017 files) are the only exceptions."""
    path = Path(path)
    state = _state(path)
    if state is None:
        raise InvalidWeightsError(f"{path.name}: not a HopeNet checkpoint (no fc_yaw/pitch/roll heads)")
    config = hopenet_config(name=name or path.stem)
    with torch.device("meta"):
        expected = HopeNet(config).state_dict()
    converted = checkpoint.exact_keys(state, expected, VESTIGIAL, path.name)
    config["source"] = {"format": "torch-pickle", "file": path.name}
    return config, converted


REPORTED = (
    Reported("aflw2000", "protocol 1", (6.92, 6.64, 5.67, 6.41), PAPER, "AFLW2000 comparison",
             "hopenet.300w_lp_alpha1", "Multi-Loss ResNet50 (α = 1)"),
    Reported("aflw2000", "protocol 1", (6.47, 6.56, 5.44, 6.16), PAPER, "AFLW2000 comparison",
             "hopenet.300w_lp_alpha2", "Multi-Loss ResNet50 (α = 2)"),
    Reported("biwi", "protocol 1", (4.81, 6.61, 3.27, 4.90), PAPER, "BIWI comparison (trained on 300W-LP)",
             "hopenet.300w_lp_alpha1", "Multi-Loss ResNet50 (α = 1)"),
    Reported("biwi", "protocol 1", (5.17, 6.98, 3.39, 5.18), PAPER, "BIWI comparison (trained on 300W-LP)",
             "hopenet.300w_lp_alpha2", "Multi-Loss ResNet50 (α = 2)"),
    Reported("biwi_70_30", "protocol 2", (3.29, 3.39, 3.00, 3.23), PAPER, "BIWI 70/30 comparison",
             None, "Multi-Loss ResNet50 (α = 1), trained on BIWI", "a BIWI-trained model, never released",
             "BIWI 70%"),
)  # fmt: skip


@register_family(
    architecture=ARCHITECTURE,
    method="HopeNet",
    schema=HopeNetConfig,
    recipe=lambda config: validated_recipe(HOPENET_RECIPE),
    models=(
        ModelEntry(
            "hopenet",
            "HopeNet",
            hopenet_config,
            tuple(
                Pretrained(tag, TRAINED_ON[tag], LICENCE, file=_released(file_name))
                for tag, file_name in RELEASES.items()
            ),
            about="ResNet-50, 224x224, 66 bins of 3° per angle; α weighs the regression loss; robust: blur",
        ),
    ),
    converter=Converter(is_hopenet_file, convert_hopenet),
    paper=PAPER,
    tags=("head-pose-estimation", "hopenet"),
    reported=REPORTED,
)
class HopeNet(PoseModel):
    """ResNet-50 + three 66-bin heads; ``forward`` returns ``(N, 3)`` degrees ``[yaw, pitch, roll]``."""

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        inplanes = 64
        for index, (planes, blocks) in enumerate(zip(widths, BLOCKS, strict=True)):
            setattr(self, f"layer{index + 1}", _stage(inplanes, planes, blocks, 1 if index == 0 else 2))
            inplanes = planes * EXPANSION
        self.avgpool = nn.AvgPool2d(7)
        bins = int(config["bins"])
        self.fc_yaw, self.fc_pitch, self.fc_roll = (nn.Linear(inplanes, bins) for _ in HEADS)
        self.normalise = Normalise(config)

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three heads' bin logits ``(yaw, pitch, roll)`` for raw RGB ``x`` in [0, 255]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.normalise(x)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        features = self.avgpool(x).flatten(1)
        return self.fc_yaw(features), self.fc_pitch(features), self.fc_roll(features)

    def forward_intermediates(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``logits`` and ``probs`` ``(3, N, 66)`` in head order [yaw, pitch, roll], and ``angles``."""
        logits = torch.stack(self.logits(x))
        probs = logits.softmax(dim=-1)
        return {"logits": logits, "probs": probs, "angles": bin_expectation(logits, OFFSET).T}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_intermediates(x)["angles"]
