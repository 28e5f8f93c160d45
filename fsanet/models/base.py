"""The base class of every pose model: config, display name, input size, and Hub methods."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from fsanet.models.hub import HubMixin

DEFAULT_IMAGE_SIZE = 64  # FSA-Net's crop; configs of other sizes say so


class PoseModel(HubMixin, nn.Module):
    """Holds the config, a display name, and the output column names.

    Forward contract: ``model(x)`` with ``x`` float32 ``(N, 3, S, S)`` RGB in [0, 255] at the
    model's :attr:`input_size`; returns ``(N, 3)`` degrees ``[yaw, pitch, roll]``.
    """

    output_names = ("yaw", "pitch", "roll")

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = copy.deepcopy(config)
        self.name: str = config.get("name", config["architecture"])

    @property
    def input_size(self) -> int:
        return int(self.config.get("image_size", DEFAULT_IMAGE_SIZE))
