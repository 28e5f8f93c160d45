"""Configs to modules: the table of architectures and :func:`build_model`.

A model is described by a JSON-serialisable ``config`` dict whose ``"architecture"`` key names
its builder. Builders register themselves when their module is imported; this module imports
them on first use, so it depends on none of them (and timm loads only for ``fsanet_timm``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fsanet.errors import InvalidWeightsError

if TYPE_CHECKING:
    from fsanet.models.base import PoseModel

Builder = Callable[[dict[str, Any]], "PoseModel"]

ARCHITECTURES: dict[str, Builder] = {}

# Where each architecture registers itself; imported on first use.
ARCHITECTURE_MODULES = {
    "fsanet": "fsanet.models.fsanet",
    "ssrnet_md": "fsanet.models.fsanet",
    "ensemble": "fsanet.models.fsanet",
    "fsanet_timm": "fsanet.models.timm_head",
    "whenet": "fsanet.models.whenet",
}


def register_architecture(name: str, builder: Builder) -> None:
    """Make ``{"architecture": name, ...}`` configs buildable (e.g. FSA heads on timm backbones)."""
    ARCHITECTURES[name] = builder


def build_model(config: dict[str, Any]) -> PoseModel:
    """An untrained module for ``config``; raises :class:`InvalidWeightsError` for unknown ones."""
    if not isinstance(config, dict) or "architecture" not in config:
        raise InvalidWeightsError("config has no 'architecture' key")
    architecture = config["architecture"]
    if architecture in ARCHITECTURE_MODULES and architecture not in ARCHITECTURES:
        importlib.import_module(ARCHITECTURE_MODULES[architecture])  # registers itself
    if architecture not in ARCHITECTURES:
        known = ", ".join(sorted(set(ARCHITECTURES) | set(ARCHITECTURE_MODULES)))
        raise InvalidWeightsError(f"unknown architecture {architecture!r} (known: {known})")
    try:
        return ARCHITECTURES[architecture](config)
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidWeightsError(f"invalid {architecture} config: {error!r}") from error
