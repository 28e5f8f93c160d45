"""The identity of a model: what it computes, its weights and its config, computed here and nowhere else.

Rows, requests, duplicate checks, the ONNX cache and the board's weights column are keyed by it. The weights
part is :func:`fsanet.models.weights.weights_identity`; the config part is a sha256 over the config as its
family's schema reads it, defaults filled in and the pre-processing recipe spelled out, without what only
describes the model (``name``, ``source``, ``trained_on``, ``protocol``, ``method``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from fsanet.models.catalogue import family_of, recipe_of
from fsanet.models.family import DESCRIPTIVE_FIELDS
from fsanet.models.weights import weights_identity


def canonical_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a config makes the model compute, with every default filled in and nothing descriptive (name,
    source, training data, protocol, method): two configs with the same canonical form are one model."""
    fam = family_of(config)
    data = fam.schema.model_validate(config).model_dump(mode="json", exclude=set(DESCRIPTIVE_FIELDS))
    if "members" in data:
        data["members"] = [canonical_config(member) for member in config["members"]]
    data["preprocess"] = recipe_of(config)
    return data


def config_identity(config: Mapping[str, Any]) -> str:
    """sha256 of :func:`canonical_config`: the identity of what a config makes the model compute."""
    canonical = json.dumps(canonical_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ModelIdentity:
    """What a model computes: its weights (:func:`~fsanet.models.weights.weights_identity`) and its config
    (:func:`config_identity`). Rows, requests, duplicate checks and the ONNX cache are keyed by it."""

    weights: str
    config: str

    @property
    def key(self) -> str:
        """One string for both (file names): 16 + 8 hex digits, far from any collision at this scale."""
        return f"{self.weights[:16]}-{self.config[:8]}"


def identify(config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> ModelIdentity:
    """The identity of ``config`` with the weights ``tensors`` (a loaded file or a module's state dict)."""
    return ModelIdentity(weights_identity(tensors), config_identity(config))


def model_identity(model: torch.nn.Module) -> ModelIdentity:
    """The identity of a model: its config and the state dict it runs with."""
    return identify(model.config, model.state_dict())
