"""A model's identity computed once and carried with it while it computes the same thing.

:func:`fsanet.model_identity` hashes every weight (0.2 s for a ResNet-50 head). A model hands its identity to
whoever asks next (the leaderboard's row key, the ONNX cache, the exported file's metadata, the engine built
from it) through :func:`carried_identity`, which hashes only when the model changed since: a parameter or
buffer replaced or changed in place (``load_state_dict``, training steps: torch counts every in-place
change of a tensor), or its config edited. A model built from weights whose identity is already known (a
validated submission) is given it with :func:`carry_identity` and never hashed at all.
"""

from __future__ import annotations

import json
import weakref
from typing import Any

from torch import nn

from fsanet.models.identity import ModelIdentity, model_identity

_ATTRIBUTE = "_carried_identity"


def _state(model: nn.Module) -> tuple[Any, ...] | None:
    """What the identity depends on, as cheap to compare as it can be: every tensor (the object itself, its
    storage and its in-place change counter) and the config; None where torch keeps no counter."""
    try:
        tensors = tuple(
            (name, weakref.ref(tensor), tensor.data_ptr(), tensor._version)
            for name, tensor in model.state_dict(keep_vars=True).items()
        )
    except RuntimeError:  # inference tensors have no version counter
        return None
    return tensors, json.dumps(getattr(model, "config", None), sort_keys=True, default=str)


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    (tensors_a, config_a), (tensors_b, config_b) = a, b
    return (
        config_a == config_b
        and len(tensors_a) == len(tensors_b)
        and all(
            name_a == name_b and ref_a() is not None and ref_a() is ref_b() and rest_a == rest_b
            for (name_a, ref_a, *rest_a), (name_b, ref_b, *rest_b) in zip(tensors_a, tensors_b, strict=True)
        )
    )


def known_identity(model: nn.Module) -> ModelIdentity | None:
    """The identity carried by ``model`` if it still computes what it did when it was given (else None)."""
    carried = getattr(model, _ATTRIBUTE, None)
    if carried is None:
        return None
    state = _state(model)
    return carried[1] if state is not None and _same(carried[0], state) else None


def carry_identity(model: nn.Module, identity: ModelIdentity) -> None:
    """Give ``model`` its identity, known from the weights it was loaded with (they must be these)."""
    state = _state(model)
    if state is not None:
        object.__setattr__(model, _ATTRIBUTE, (state, identity))


def carried_identity(model: nn.Module) -> ModelIdentity:
    """:func:`fsanet.model_identity` of ``model``, hashed only when it carries none (see the module doc)."""
    identity = known_identity(model)
    if identity is None:
        identity = model_identity(model)
        carry_identity(model, identity)
    return identity
