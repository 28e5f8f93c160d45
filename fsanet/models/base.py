"""The base class of every pose model: config, display name, input size, and the Hub methods
(``huggingface_hub.ModelHubMixin``: ``save_pretrained``, ``push_to_hub``, ``from_pretrained``).

It ties a module to the loaders (:mod:`fsanet.models.specs`, :mod:`fsanet.models.hub`), which know families
only through the catalogue, never by import: the families import this class, and the catalogue finds them.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import ModelCard, ModelHubMixin
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fsanet.errors import InvalidImageError, InvalidWeightsError
from fsanet.models.catalogue import family_of
from fsanet.models.hub import model_card, write_model_files
from fsanet.models.published import published_config
from fsanet.models.specs import load_model

DEFAULT_IMAGE_SIZE = 64  # FSA-Net's crop; configs of other sizes say so


class PoseModel(
    ModelHubMixin,
    nn.Module,
    library_name="fsanet",
    repo_url="https://github.com/shamangary/FSA-Net",
    tags=["head-pose-estimation"],
):
    """Holds the config, a display name, and the output column names.

    Forward contract: ``model(x)`` with ``x`` float32 ``(N, 3, S, S)`` RGB in [0, 255] at the
    model's :attr:`input_size`; returns ``(N, 3)`` degrees ``[yaw, pitch, roll]``. What users
    naturally pass is converted first (:func:`as_model_input`): NumPy arrays, ``uint8``, channels-last
    ``(N, S, S, 3)``, a single image without the batch axis; anything else fails with the contract.
    """

    output_names = ("yaw", "pitch", "roll")
    resizes_input = False  # True where the model resamples any input size to its own (timm heads)

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = copy.deepcopy(config)
        self.name: str = config.get("name", config["architecture"])
        self.register_forward_pre_hook(_convert_input)

    @property
    def input_size(self) -> int:
        return int(self.config.get("image_size", DEFAULT_IMAGE_SIZE))

    # ``huggingface_hub.ModelHubMixin``: its save_pretrained / push_to_hub call these two.
    def _save_pretrained(self, save_directory: Path) -> None:
        write_model_files(self, save_directory, published_config(self))

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        return model_card(self, published_config(self), **kwargs)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *, revision: str | None = None, **_: Any
    ) -> PoseModel:
        """A model of this class from any spec :func:`fsanet.load_model` takes: a registry name, a folder,
        ``hf-hub:owner/name[@rev]``. Another family's model is refused, never returned in its place.

        Not the mixin's: it asks the Hub for any string that is not a folder, so a mistyped local path
        would become a Hub request; the registry's spec rules refuse it instead.
        """
        model = load_model(pretrained_model_name_or_path, revision=revision)
        if not isinstance(model, cls):
            method = family_of(model.config).method
            raise InvalidWeightsError(
                f"{pretrained_model_name_or_path} holds a {method} model ({type(model).__name__}), "
                f"not a {cls.__name__}"
            )
        return model


def as_model_input(
    x: Any, size: int, like: torch.Tensor | None = None, any_size: bool = False
) -> torch.Tensor:
    """``x`` as the float ``(N, 3, size, size)`` RGB [0, 255] batch a pose model takes.

    Accepts a tensor or NumPy array, ``uint8`` or float, ``(N, 3, S, S)``, ``(N, S, S, 3)``, or one
    image without the batch axis (``any_size``: any height and width); lands on ``like``'s device and
    dtype. Values are not rescaled: floats must already be raw [0, 255], as the models normalise inside.
    """
    h, w = ("H", "W") if any_size else (size, size)
    contract = (
        f"the model takes RGB images of {h}x{w}, raw [0, 255], as a tensor or NumPy array, uint8 or float: "
        f"(N, 3, {h}, {w}), (N, {h}, {w}, 3) or one image without N"
    )
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
            raise InvalidImageError(f"{contract}; got a NumPy array of {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        raise InvalidImageError(f"{contract}; got {type(x).__name__}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise InvalidImageError(f"{contract}; got a tensor of {x.dtype}")
    shape = tuple(x.shape)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() == 4 and x.shape[1] != 3 and x.shape[3] == 3:
        x = x.permute(0, 3, 1, 2)  # channels-last: a view, no copy
    if x.dim() != 4 or x.shape[1] != 3 or (not any_size and tuple(x.shape[2:]) != (size, size)):
        raise InvalidImageError(f"{contract}; got shape {shape}")
    if like is not None and (x.device != like.device or x.dtype != like.dtype):
        x = x.to(like.device, like.dtype if like.is_floating_point() else torch.float32)
    return x.float() if not x.is_floating_point() else x


def _convert_input(model: PoseModel, inputs: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Forward pre-hook: the batch the model takes, from what users pass (floats of the right shape,
    device and dtype go through untouched, so the hook costs nothing on the usual path)."""
    x = inputs[0]
    reference = next(model.parameters(), None)
    if (
        isinstance(x, torch.Tensor)
        and x.dim() == 4
        and x.shape[1] == 3
        and (model.resizes_input or tuple(x.shape[2:]) == (model.input_size, model.input_size))
        and x.is_floating_point()
        and (reference is None or (x.device == reference.device and x.dtype == reference.dtype))
    ):
        return None
    return (as_model_input(x, model.input_size, reference, model.resizes_input), *inputs[1:])


def parameter_count(model: nn.Module) -> int:
    """The model's size as the board and the submission check report it: its parameters (not buffers)."""
    return sum(p.numel() for p in model.parameters())


def gflops_per_face(model: nn.Module, size: int) -> float:
    """Forward FLOPs of one ``size`` x ``size`` face, counted by torch's own flop counter, in 10^9."""
    device = next(model.parameters()).device
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.zeros(1, 3, size, size, device=device))
    return counter.get_total_flops() / 1e9
