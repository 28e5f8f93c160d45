"""What a saved model says it is: a registry model whose weights (or config) changed after it was loaded is
saved as what it is. Its config and card no longer claim the official name and the authors' file, but say
``derived_from`` them; the model identity tells whether it still computes what the official one does.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fsanet.errors import FSANetError, UnknownModelError
from fsanet.models.catalogue import provenance, split_name
from fsanet.models.identity import ModelIdentity, model_identity
from fsanet.models.pretrained import create_model

if TYPE_CHECKING:
    from fsanet.models.base import PoseModel


def official_name(config: Mapping[str, Any]) -> str | None:
    """The registry ``name.tag`` whose pretrained weights ``config`` says it holds, else ``None``."""
    name = config.get("name")
    if not isinstance(name, str):
        return None
    try:
        weights = split_name(name)[2]
    except UnknownModelError:
        return None
    return name if weights is not None else None


@functools.lru_cache(maxsize=32)
def official_identity(name: str) -> ModelIdentity | None:
    """The identity of registry model ``name.tag`` with its pretrained weights; ``None`` where they cannot
    be loaded here (then nothing can show that a model still holds them)."""
    try:
        return model_identity(create_model(name, pretrained=True))
    except FSANetError:
        return None


def published_config(model: PoseModel) -> dict[str, Any]:
    """The config that ``save_pretrained`` and ``push_to_hub`` write, and the card describes.

    The model's own, except for a registry model that no longer computes what the official one does (its
    :func:`~fsanet.models.identity.model_identity` differs): the official ``name`` and ``source`` become
    ``derived_from`` (with what the original was trained on), and ``trained_on`` / ``protocol`` are kept
    only where they were stated anew (the original's values no longer describe the new weights). A fusion's
    members are judged one by one.
    """
    config = copy.deepcopy(model.config)
    name = official_name(config)
    if name is None or model_identity(model) == official_identity(name):
        return config
    members = getattr(model, "members", None)
    if "members" in config and members is not None:
        config["members"] = [published_config(member) for member in members]
    trained_on, protocol = provenance({}, name)
    derived = {"name": config.pop("name"), **(config.pop("source", None) or {})}
    for key, original in (("trained_on", trained_on), ("protocol", protocol)):
        if original is not None:
            derived[key] = original
            if config.get(key) == original:
                del config[key]
    config["derived_from"] = {key: str(value) for key, value in derived.items()}
    return config
