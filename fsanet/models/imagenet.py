"""The ImageNet normalisation of the families whose backbones start from ImageNet (their configs say so).

Their authors feed ``ToTensor()`` + ``Normalize(mean, std)``: ``(x / 255 - mean) / std``. The models here take
raw RGB in [0, 255] and normalise inside, as ``(x - 255 mean) / (255 std)``; the config states the numbers
(``mean``, ``std``, ``input_channel_order``) and its schema bounds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from fsanet.models.family import ModelConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_fields() -> dict[str, Any]:
    """The config fields of an ImageNet-normalised RGB input."""
    return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input_channel_order": "rgb"}


class ImageNetConfig(ModelConfig):
    """The schema fields of :func:`imagenet_fields`: three finite means, three positive deviations."""

    input_channel_order: Literal["rgb"] = "rgb"
    mean: Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=3, max_length=3)]
    std: Annotated[
        list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(min_length=3, max_length=3)
    ]


class Normalise(nn.Module):
    """Raw RGB ``x`` in [0, 255] -> ``(x / 255 - mean) / std`` (buffers, not weights: no state-dict entry)."""

    def __init__(self, config: Mapping[str, Any]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(config["mean"]).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(config["std"]).view(1, 3, 1, 1) * 255, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
