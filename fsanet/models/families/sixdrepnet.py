"""6DRepNet (Hempel, Abdelrahman & Al-Hamadi, ICIP 2022, "6D Rotation Representation for Unconstrained Head
Pose Estimation").

A RepVGG-B1g2 backbone in its deploy form (every block one 3x3 convolution with bias and a ReLU: the training
branches and BatchNorms already folded by the authors' ``convert.py``), global average pooling, and one linear
layer to a 6D rotation representation: its two 3-vectors are orthonormalised (Gram-Schmidt through cross
products) into a rotation matrix, whose Euler angles are the output. Every step is the authors'
``utils.py``: ``R = Rz(roll) Ry(yaw) Rx(pitch)``, ``pitch = atan2(R21, R22)``,
``yaw = atan2(-R20, sqrt(R00² + R10²))``, ``roll = atan2(R10, R00)`` (with its singular branch). The
authors order their angles ``[pitch, yaw, roll]``; ``forward`` returns this project's ``[yaw, pitch, roll]``,
with the same signs (those of the 300W-LP / AFLW2000 ``Pose_Para`` labels the network was trained on).

Forward contract as every model here: raw RGB in [0, 255] at 224x224, the ``ToTensor`` + ImageNet
``Normalize`` inside. Its crop is the authors' benchmark crop (``sixdrepnet/test.py``): HopeNet's loose box
(6DRepNet's ``datasets.py`` is HopeNet's), then ``Resize(256)`` + ``CenterCrop(224)``.

The released ``6DRepNet_300W_LP_AFLW2000.pth`` is a plain deploy-mode state dict (``demo.py`` also accepts it
wrapped as ``{'model_state_dict': ...}``), read with ``torch.load(weights_only=True)``; every tensor keeps its
name. It is pinned at a Hub copy (``osanseviero/6DRepNet_300W_LP_AFLW2000``, MIT) at the commit that uploaded
it, with the sha256 and size of its Git LFS pointer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from fsanet.data.recipes import register_box_rule, validated_recipe
from fsanet.errors import InvalidWeightsError
from fsanet.models.base import PoseModel
from fsanet.models.families import _torch_checkpoint as checkpoint
from fsanet.models.families.hopenet import loose_crop
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

ARCHITECTURE = "sixdrepnet"
IMAGE_SIZE = 224
# RepVGG (Ding et al., CVPR 2021) by name: blocks per stage 1..4, width multipliers, and the groups of the
# grouped blocks (numbered from 1 at stage 1's first block: the even ones, up to 26).
REPVGG = {"RepVGG-B1g2": ((4, 6, 16, 1), (2.0, 2.0, 2.0, 4.0), 2)}
GROUPED_LAYERS = frozenset(range(2, 27, 2))
NORM_EPS = 1e-8  # utils.normalize_vector's floor
SINGULAR = 1e-6  # utils.compute_euler_angles_from_rotation_matrices: sy below it is gimbal lock

PAPER = (
    "Hempel, Abdelrahman & Al-Hamadi, 6D Rotation Representation For Unconstrained Head Pose Estimation, "
    "ICIP 2022"
)
LICENCE = "mit"  # the authors' repository and the Hub copy of the weights
MIRROR_ENV = "SIXDREPNET_OFFICIAL_MIRROR"
# A Hub copy (uploaded 2022-03-04 for the Hugging Face Space of 6DRepNet), at the commit that uploaded it; the
# sha256 and size are its Git LFS pointer's. The authors' own download (regressor.py) is
# https://cloud.ovgu.de/s/Q67RnLDy6JKLRWm/download/6DRepNet_300W_LP_AFLW2000.pth, with no checksum: whether
# the two files are the same bytes is not established.
HUB_REPO, HUB_COMMIT = "osanseviero/6DRepNet_300W_LP_AFLW2000", "45331224e5c723b4ebeea0e1dc212c6e2236a552"
WEIGHTS = WeightsFile(
    "model.pth",
    "9bdcd0e072df0d21e92288b40ea1d1b3cf7173c44728ab9c45c4d673f361e018",
    MIRROR_ENV,
    f"https://huggingface.co/{HUB_REPO}/resolve/{HUB_COMMIT}",
    max_bytes=157_315_191,  # its LFS pointer's size
    published=f"https://huggingface.co/{HUB_REPO}/tree/{HUB_COMMIT}",
)
TRAINED_ON = TrainingSet("300W-LP", "protocol 1", "300W-LP: ordinary photos", "many people, poses up to ±90°")
BOX_RULE = "sixdrepnet"
BENCHMARK_KEEP = 224 / 256  # test.py: Resize(256) + CenterCrop(224)


def benchmark_crop(box: Sequence[float], frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``sixdrepnet/test.py``'s crop: HopeNet's loose box, then the central 224/256 of its shorter side."""
    return loose_crop(box, frame_size, BENCHMARK_KEEP)


register_box_rule(BOX_RULE, benchmark_crop)

SIXDREPNET_RECIPE = {
    "box": BOX_RULE,
    "size": IMAGE_SIZE,
    "interpolation": "area",  # PIL's filtered bilinear downscale: see hopenet.HOPENET_RECIPE
    "color": "rgb",
    "minmax": False,
}


def sixdrepnet_config(**extra: Any) -> dict[str, Any]:
    """The config of 6DRepNet: RepVGG-B1g2 (deploy form), 6D head, 224x224 input, its crop."""
    return {
        "architecture": ARCHITECTURE,
        "name": "sixdrepnet",
        "method": "6DRepNet",
        "backbone": "RepVGG-B1g2",
        "image_size": IMAGE_SIZE,
        **imagenet_fields(),
        "preprocess": dict(SIXDREPNET_RECIPE),
        **extra,
    }


class SixDRepNetConfig(ImageNetConfig):
    architecture: Literal["sixdrepnet"]
    backbone: Literal["RepVGG-B1g2"]
    image_size: Literal[224]


# ------------------------------------------------------------------------------------ 6D -> R -> Euler
def _normalised(v: torch.Tensor) -> torch.Tensor:
    return v / torch.sqrt(v.pow(2).sum(dim=1, keepdim=True)).clamp_min(NORM_EPS)


def _cross(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.stack(
        [
            u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1],
            u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
            u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0],
        ],
        dim=1,
    )


def rotation_from_6d(raw: torch.Tensor) -> torch.Tensor:
    """``(N, 6)`` -> ``(N, 3, 3)`` rotation matrices with columns ``[x, y, z]``: ``x = raw[:3]`` normalised,
    ``z = x × raw[3:]`` normalised, ``y = z × x`` (``utils.compute_rotation_matrix_from_ortho6d``)."""
    x = _normalised(raw[:, 0:3])
    z = _normalised(_cross(x, raw[:, 3:6]))
    y = _cross(z, x)
    return torch.stack([x, y, z], dim=2)


def euler_pyr(rotation: torch.Tensor) -> torch.Tensor:
    """``(N, 3, 3)`` -> ``(N, 3)`` radians ``[pitch, yaw, roll]`` (x, y, z), the authors' order and branch."""
    sy = torch.sqrt(rotation[:, 0, 0] * rotation[:, 0, 0] + rotation[:, 1, 0] * rotation[:, 1, 0])
    singular = sy < SINGULAR
    pitch = torch.where(
        singular,
        torch.atan2(-rotation[:, 1, 2], rotation[:, 1, 1]),
        torch.atan2(rotation[:, 2, 1], rotation[:, 2, 2]),
    )
    yaw = torch.atan2(-rotation[:, 2, 0], sy)
    roll = torch.where(singular, torch.zeros_like(sy), torch.atan2(rotation[:, 1, 0], rotation[:, 0, 0]))
    return torch.stack([pitch, yaw, roll], dim=1)


# --------------------------------------------------------------------------------------------- network
class RepVGGBlock(nn.Module):
    """A deploy-form RepVGG block: one 3x3 convolution with bias, then ReLU (``rbr_reparam``, its name)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int = 1):
        super().__init__()
        self.rbr_reparam = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, groups=groups)
        self.nonlinearity = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinearity(self.rbr_reparam(x))


def repvgg_stages(name: str) -> list[nn.Module]:
    """The five stages of RepVGG ``name`` in deploy form, as the authors' ``RepVGG`` builds them."""
    blocks, widths, groups = REPVGG[name]
    in_planes = min(64, int(64 * widths[0]))
    stages: list[nn.Module] = [RepVGGBlock(3, in_planes, 2)]
    layer = 1
    for planes, width, count in zip((64, 128, 256, 512), widths, blocks, strict=True):
        out_planes, stage = int(planes * width), []
        for index in range(count):
            grouped = groups if layer in GROUPED_LAYERS else 1
            stage.append(RepVGGBlock(in_planes, out_planes, 2 if index == 0 else 1, grouped))
            in_planes, layer = out_planes, layer + 1
        stages.append(nn.Sequential(*stage))
    return stages


# ------------------------------------------------------------------------------------- the authors' file
def _state(path: Path) -> dict[str, torch.Tensor] | None:
    state = checkpoint.read_state_dict(path)
    head = state.get("linear_reg.weight") if state is not None else None
    return state if head is not None and head.shape[0] == 6 and "layer0.rbr_reparam.weight" in state else None


def is_sixdrepnet_file(path: Path) -> bool:
    """Whether ``path`` is a 6DRepNet checkpoint: a deploy-form RepVGG state dict with the 6D head."""
    return _state(path) is not None


def convert_sixdrepnet(
    path: str | Path, name: str | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The authors' ``.pth`` (plain or ``{'model_state_dict': ...}``) -> ``(config, state_dict)``, every
    tensor under its own name and checked against the module."""
    path = Path(path)
    state = _state(path)
    if state is None:
        raise InvalidWeightsError(f"{path.name}: not a deploy-form 6DRepNet checkpoint")
    config = sixdrepnet_config(name=name or path.stem)
    with torch.device("meta"):
        expected = SixDRepNet(config).state_dict()
    converted = checkpoint.exact_keys(state, expected, what=path.name)
    config["source"] = {"format": "torch-pickle", "file": path.name}
    return config, converted


REPORTED = (
    Reported("aflw2000", "protocol 1", (3.63, 4.91, 3.37, 3.97), PAPER, "trained on 300W-LP, AFLW2000",
             "sixdrepnet.300w_lp"),
    Reported("biwi", "protocol 1", (3.24, 4.48, 2.68, 3.47), PAPER, "trained on 300W-LP, BIWI",
             "sixdrepnet.300w_lp"),
    Reported("biwi_70_30", "protocol 2", (2.69, 2.92, 2.36, 2.66), PAPER, "BIWI 70/30", None,
             "6DRepNet trained on BIWI", "a BIWI-trained model, never released", "BIWI 70%"),
)  # fmt: skip


@register_family(
    architecture=ARCHITECTURE,
    method="6DRepNet",
    schema=SixDRepNetConfig,
    recipe=lambda config: validated_recipe(SIXDREPNET_RECIPE),
    models=(
        ModelEntry(
            "sixdrepnet",
            "6DRepNet",
            sixdrepnet_config,
            (Pretrained("300w_lp", TRAINED_ON, LICENCE, file=WEIGHTS),),
            about="RepVGG-B1g2 on 224x224 crops, a 6D rotation turned into Euler angles",
        ),
    ),
    converter=Converter(is_sixdrepnet_file, convert_sixdrepnet),
    paper=PAPER,
    tags=("head-pose-estimation", "6drepnet"),
    reported=REPORTED,
)
class SixDRepNet(PoseModel):
    """RepVGG-B1g2 (deploy) + a 6D rotation head; ``forward``: ``(N, 3)`` degrees [yaw, pitch, roll]."""

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.layer0, self.layer1, self.layer2, self.layer3, self.layer4 = repvgg_stages(config["backbone"])
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.linear_reg = nn.Linear(self.layer4[-1].rbr_reparam.out_channels, 6)
        self.normalise = Normalise(config)

    def raw6d(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(N, 6)`` output of ``linear_reg`` for raw RGB ``x`` in [0, 255]."""
        x = self.normalise(x)
        for stage in (self.layer0, self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
        return self.linear_reg(self.gap(x).flatten(1))

    def forward_intermediates(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``raw6d``, ``rotation_matrices`` (the authors' ``model(x)``), ``euler_pyr`` (their degrees, their
        order [pitch, yaw, roll]) and ``angles`` ([yaw, pitch, roll], what ``forward`` returns)."""
        raw = self.raw6d(x)
        rotation = rotation_from_6d(raw)
        euler = euler_pyr(rotation) * 180 / math.pi  # as the authors' scripts (rad2deg has no ONNX export)
        pitch, yaw, roll = euler.unbind(dim=1)
        angles = torch.stack([yaw, pitch, roll], dim=1)
        return {"raw6d": raw, "rotation_matrices": rotation, "euler_pyr": euler, "angles": angles}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_intermediates(x)["angles"]
