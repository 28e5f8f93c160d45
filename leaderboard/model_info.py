"""What the board says about a model besides its scores: method family, training data, size and cost."""

from __future__ import annotations

from typing import Any

import torch

from fsanet.data.recipes import recipe_of
from fsanet.models.base import gflops_per_face
from fsanet.models.registry import TRAINED_ON

METHOD_FAMILIES = {
    "fsanet": "FSA-Net",
    "ensemble": "FSA-Net (fusion)",
    "ssrnet_md": "SSR-Net-MD",
    "fsanet_timm": "FSA-Net head on timm",
    "whenet": "WHENet",
}
UNKNOWN = "not stated"  # a submission whose config.json says nothing about its training data


def method_family(config: dict[str, Any]) -> str:
    """The method a model belongs to: its config's ``method``, else its architecture's family."""
    architecture = config.get("architecture", "")
    return config.get("method") or METHOD_FAMILIES.get(architecture, architecture or UNKNOWN)


def provenance(config: dict[str, Any], model_name: str) -> tuple[str, str]:
    """``(trained on, protocol)`` from the config, else from a registry tag in the name (``x.300w_lp``)."""
    if config.get("trained_on") and config.get("protocol"):
        return str(config["trained_on"]), str(config["protocol"])
    tag = model_name.split("@", 1)[0].rpartition(".")[2]
    return TRAINED_ON.get(tag, (UNKNOWN, UNKNOWN))


def model_info(model: torch.nn.Module, model_name: str) -> dict[str, Any]:
    """Board columns of a plain (not optimised) model: family, training data, params, GFLOPs, input."""
    config = getattr(model, "config", {})
    trained_on, protocol = provenance(config, model_name)
    recipe = recipe_of(config)
    return {
        "method": method_family(config),
        "trained_on": trained_on,
        "model_protocol": protocol,
        "params": sum(p.numel() for p in model.parameters()),
        "gflops": gflops_per_face(model, int(recipe["size"])),
        "input_size": int(recipe["size"]),
        "preprocess": recipe,
    }
