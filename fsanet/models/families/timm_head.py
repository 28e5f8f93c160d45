"""FSA heads on timm backbones: ``fsanet_timm_<backbone>``.

Three feature levels of any ``timm`` model built with ``features_only=True`` replace the
two-stream G model. Each level goes through a :class:`~fsanet.models.layers.StageFusion` (the
gated ``tanh(conv) * relu(conv)`` product, both branches reading the same map since there is
one stream) to 64 channels, and is average-pooled to the deepest level's grid. From there it
is FSA-Net unchanged: scoring -> fine-grained structure mapping -> aggregation -> SSR, with
the same layers as :class:`fsanet.models.families.fsanet.FSANet`.

The model keeps the project's forward contract: raw RGB in [0, 255], any square size (it is
resized to the backbone's ``image_size`` inside, so the leaderboard's 64x64 crops work), and
ImageNet normalisation from the backbone's ``pretrained_cfg`` is applied inside.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from fsanet.models.families.fsanet import (
    CAPSULE_ROWS,
    NUM_STAGES,
    PAPER,
    FSANet,
    FSANetConfig,
    fsanet_config,
    image_size_recipe,
)
from fsanet.models.family import ModelEntry, register_family
from fsanet.models.layers import StageFusion

ARCHITECTURE = "fsanet_timm"
NAME_PREFIX = "fsanet_timm_"
STAGE_CHANNELS = 64  # U_k width, as in FSA-Net: the capsule layers expect 64-d pixel features
DEFAULT_OUT_INDICES = (-3, -2, -1)  # the three deepest levels (strides 8, 16, 32 on most models)


def _timm():
    from fsanet.utils.torchvision_compat import ensure_torchvision

    ensure_torchvision()  # timm imports torchvision, whose native ops are missing on CPU wheels
    import timm

    return timm


def _create_backbone(config: dict[str, Any], pretrained: bool | str = False) -> nn.Module:
    kwargs: dict[str, Any] = {"features_only": True, "out_indices": tuple(config["out_indices"])}
    if isinstance(pretrained, str | Path):
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights {path} not found")
        # timm reads .safetensors with safetensors and other files with torch.load(weights_only=True).
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    else:
        kwargs["pretrained"] = bool(pretrained)
    return _timm().create_model(config["backbone"], **kwargs)


def timm_config(
    backbone: str,
    aggregation: str = "caps",
    scoring: str = "1x1",
    image_size: int | None = None,
    out_indices: tuple[int, ...] = DEFAULT_OUT_INDICES,
) -> dict[str, Any]:
    """The config of an FSA head on ``backbone``; input size and mean/std come from its pretrained_cfg."""
    if len(out_indices) != NUM_STAGES:
        raise ValueError(f"an FSA head needs {NUM_STAGES} feature levels, got out_indices={out_indices}")
    timm = _timm()
    if backbone not in timm.list_models():
        raise ValueError(f"unknown timm model {backbone!r}")
    # A meta-device model gives feature_info and pretrained_cfg without allocating weights.
    with torch.device("meta"):
        probe = timm.create_model(backbone, features_only=True, out_indices=tuple(out_indices))
    cfg = probe.pretrained_cfg
    size = int(image_size or cfg["input_size"][-1])
    grid = math.ceil(size / max(probe.feature_info.reduction()))
    num_primcaps = NUM_STAGES * grid * grid if scoring == "uniform" else NUM_STAGES * CAPSULE_ROWS
    return fsanet_config(
        aggregation,
        scoring,
        architecture=ARCHITECTURE,
        name=f"{NAME_PREFIX}{backbone}",
        backbone=backbone,
        out_indices=list(out_indices),
        feature_channels=list(probe.feature_info.channels()),
        grid_size=grid,
        mean=[float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406))],
        std=[float(v) for v in cfg.get("std", (0.229, 0.224, 0.225))],
        num_primcaps=num_primcaps,
        image_size=size,
    )


class TimmStageMaps(nn.Module):
    """Backbone levels -> [U1, U2, U3] (deepest first, as FSA-Net's stages), each (N, 64, grid, grid)."""

    def __init__(self, config: dict[str, Any], pretrained: bool | str = False):
        super().__init__()
        self.backbone = _create_backbone(config, pretrained)
        channels = list(self.backbone.feature_info.channels())
        if channels != list(config["feature_channels"]):
            raise ValueError(
                f"{config['backbone']} has feature channels {channels}, config says "
                f"{config['feature_channels']}"
            )
        self.grid = int(config["grid_size"])
        self.fusions = nn.ModuleList(StageFusion(c, STAGE_CHANNELS) for c in reversed(channels))
        self.register_buffer("mean", torch.tensor(config["mean"]).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(config["std"]).view(1, 3, 1, 1) * 255, persistent=False)
        self.image_size = int(config["image_size"])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(
                x,
                size=(self.image_size,) * 2,
                mode="bilinear",
                align_corners=False,
                antialias=x.shape[-1] > self.image_size,
            )
        levels = self.backbone((x - self.mean) / self.std)
        maps = []
        for fusion, level in zip(self.fusions, reversed(levels), strict=True):
            fused = fusion(level, level)
            maps.append(F.adaptive_avg_pool2d(fused, self.grid) if fused.shape[-1] != self.grid else fused)
        return maps


Finite = Annotated[float, Field(allow_inf_nan=False)]


class TimmFSANetConfig(FSANetConfig):
    architecture: Literal["fsanet_timm"]  # type: ignore[assignment]
    backbone: Annotated[str, Field(pattern=r"^[a-z0-9_.]{1,64}$")]
    out_indices: Annotated[list[Annotated[int, Field(ge=-8, le=8)]], Field(min_length=3, max_length=3)]
    feature_channels: Annotated[list[Annotated[int, Field(ge=1, le=4096)]], Field(min_length=3, max_length=3)]
    grid_size: Annotated[int, Field(ge=1, le=16)]
    mean: Annotated[list[Finite], Field(min_length=3, max_length=3)]
    std: Annotated[
        list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(min_length=3, max_length=3)
    ]
    num_primcaps: Annotated[int, Field(ge=3, le=3 * 256)]
    image_size: Annotated[int, Field(ge=32, le=448)]  # type: ignore[assignment]

    def _pixels_per_stage(self) -> int:
        return self.grid_size**2


def _entry(name: str) -> ModelEntry | None:
    """``fsanet_timm_<backbone>`` for any timm model: untrained, never listed (there are hundreds)."""
    if not name.startswith(NAME_PREFIX):
        return None
    backbone = name[len(NAME_PREFIX) :]
    return ModelEntry(name, f"FSA-Net head on {backbone}", lambda: timm_config(backbone))


def _for_training(
    name: str,
    aggregation: str = "caps",
    scoring: str = "1x1",
    pretrained_backbone: str | None = None,
    image_size: int | None = None,
) -> TimmFSANet:
    """``fsanet train``'s model: ``pretrained_backbone`` a weights file, ``"imagenet"`` (timm's) or None."""
    weights = True if pretrained_backbone == "imagenet" else (pretrained_backbone or False)
    backbone = name[len(NAME_PREFIX) :]
    return create_timm_model(backbone, aggregation, scoring, weights, image_size)


@register_family(
    architecture=ARCHITECTURE,
    method="FSA-Net head on timm",
    schema=TimmFSANetConfig,
    recipe=image_size_recipe,
    resolve_name=_entry,
    for_training=lambda name, options: _for_training(name, **options),
    paper=PAPER,
    tags=("head-pose-estimation", "fsanet", "timm"),
)
class TimmFSANet(FSANet):
    """:class:`~fsanet.models.families.fsanet.FSANet` with :class:`TimmStageMaps` as its feature extractor.

    ``primary_capsules``/``forward`` are FSANet's; only the parts sized by the backbone differ
    """

    resizes_input = True  # TimmStageMaps resamples any crop to the backbone's size

    def __init__(self, config: dict[str, Any], pretrained_backbone: bool | str = False):
        grid = int(config["grid_size"])
        super().__init__(config, TimmStageMaps(config, pretrained_backbone), pixels_per_stage=grid * grid)


def create_timm_model(
    backbone: str,
    aggregation: str = "caps",
    scoring: str = "1x1",
    pretrained_backbone: bool | str = False,
    image_size: int | None = None,
) -> TimmFSANet:
    """``fsanet_timm_<backbone>``: an untrained FSA head on ``backbone``.

    ``pretrained_backbone``: ``False`` (random init), ``True`` (timm's ImageNet weights, needs the
    Hub) or a local weights file (``.safetensors`` preferred; ``.pth`` is read with ``weights_only``).
    """
    config = timm_config(backbone, aggregation, scoring, image_size)
    return TimmFSANet(config, pretrained_backbone)
