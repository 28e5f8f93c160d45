"""What the board says about a model besides its scores: family, training data, size and cost."""

from __future__ import annotations

from typing import Any

from fsanet.models.base import PoseModel, gflops_per_face, parameter_count
from fsanet.models.registry import method_of, provenance, recipe_of


def model_info(model: PoseModel, registry_name: str = "") -> dict[str, Any]:
    """Record fields of a plain (not optimised) model: family, training data, params, GFLOPs, input.

    Training data and protocol are what the config states; for a registry model (``registry_name``) what the
    registry says of its tag. Left out when nobody states them (the board shows "not stated").
    """
    config = model.config
    trained_on, protocol = provenance(config, registry_name)
    recipe = recipe_of(config)
    info = {
        "architecture": config["architecture"],
        "method": method_of(config),
        "params": parameter_count(model),
        "gflops": gflops_per_face(model, int(recipe["size"])),
        "input_size": int(recipe["size"]),
        "preprocess": recipe,
    }
    if trained_on:
        info["trained_on"] = trained_on
    if protocol:
        info["model_protocol"] = protocol
    return info
