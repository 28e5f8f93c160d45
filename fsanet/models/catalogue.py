"""The one catalogue of models, timm-style: every family, every registry name, and every question about a
config (its family, schema, build, recipe, method, provenance).

Families are found, never listed: every module of :mod:`fsanet.models.families`, and every module (or
:class:`~fsanet.models.family.Family`) another installed package declares under the ``fsanet.families``
entry-point group, is imported once, and each registers itself (:func:`fsanet.register_family`). A plug-in
that claims a built-in's architecture or name is refused with a warning naming both; the built-ins stay.

Names are ``<name>`` (untrained) or ``<name>.<tag>`` (pretrained weights, where a family ships them). Where
a ``name.tag``'s weights come from is :mod:`fsanet.models.pretrained`; what a spec names (a registry name,
a folder, a Hub repo) is :mod:`fsanet.models.specs`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError

from fsanet.data.recipes import validated_recipe
from fsanet.errors import InvalidWeightsError, UnknownModelError
from fsanet.models.family import (
    Family,
    FamilyConflictError,
    ModelEntry,
    Pretrained,
    add_family,
    load_builtin_families,
    registered,
)
from fsanet.models.weights import non_finite, tensor_problems, tensor_spec

if TYPE_CHECKING:
    from fsanet.models.base import PoseModel

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fsanet.families"
_discovery = threading.RLock()
_discovered = False


# ------------------------------------------------------------------------------------------ discovery
def families() -> Mapping[str, Family]:
    """Every family, by architecture: this package's modules and the ``fsanet.families`` entry points."""
    global _discovered
    if not _discovered:
        with _discovery:
            if not _discovered:
                load_builtin_families()
                for entry_point in entry_points(group=ENTRY_POINT_GROUP):
                    _load_entry_point(entry_point)
                _discovered = True
    return registered()


def _load_entry_point(entry_point: Any) -> None:
    """Import a declared family module (it registers itself), or register a declared Family object."""
    try:
        loaded = entry_point.load()
        if isinstance(loaded, Family):
            add_family(loaded)
    except FamilyConflictError as error:
        log.warning("%s (entry point %r)", error, entry_point.name)
    except Exception as error:  # noqa: BLE001  (a broken plug-in must not take the built-in families down)
        log.warning("model family %r (%s) did not load: %s", entry_point.name, entry_point.value, error)


def family(architecture: str) -> Family:
    found = families().get(architecture)
    if found is None:
        known = ", ".join(sorted(families()))
        raise InvalidWeightsError(f"unknown architecture {str(architecture)[:40]!r} (known: {known})")
    return found


def family_of(config: Mapping[str, Any]) -> Family:
    """The family a config belongs to (its ``architecture``)."""
    if not isinstance(config, Mapping) or "architecture" not in config:
        raise InvalidWeightsError("config has no 'architecture' key")
    return family(config["architecture"])


# -------------------------------------------------------------------------------------------- names
def _listed() -> dict[str, tuple[Family, ModelEntry]]:
    return {entry.name: (fam, entry) for fam in families().values() for entry in fam.models}


def _entry(name: str) -> tuple[Family, ModelEntry]:
    listed = _listed()
    if name in listed:
        return listed[name]
    for fam in families().values():
        entry = fam.resolve_name(name) if fam.resolve_name else None
        if entry is not None:
            return fam, entry
    raise UnknownModelError(f"unknown model {name[:80]!r}; known: {', '.join(listed)}")


def model_entry(name: str) -> ModelEntry:
    """The registry name ``name`` (no tag), listed or resolved by a family (``fsanet_timm_<backbone>``)."""
    return _entry(name)[1]


def split_name(model_name: str) -> tuple[Family, ModelEntry, Pretrained | None]:
    """``name`` or ``name.tag`` -> (family, entry, its weights of that tag, None without a tag)."""
    name, _, tag = model_name.partition(".")
    fam, entry = _entry(name)
    if not tag:
        return fam, entry, None
    weights = entry.weights(tag)
    if weights is None:
        available = ", ".join(p.tag for p in entry.pretrained) or "none"
        raise UnknownModelError(f"no pretrained tag {tag!r} for {name} (available: {available})")
    return fam, entry, weights


def is_registry_name(spec: str) -> bool:
    try:
        split_name(spec)
    except UnknownModelError:
        return False
    return True


def list_models(pretrained: bool = False, include_unusable: bool = False) -> list[str]:
    """Registry names, or with ``pretrained=True`` every ``name.tag`` that has usable weights.

    ``include_unusable`` adds the shipped but unusable ones (a :class:`Pretrained` with ``unusable``).
    """
    entries = [entry for _, entry in _listed().values()]
    if not pretrained:
        return [entry.name for entry in entries]
    return [
        f"{entry.name}.{weights.tag}"
        for entry in entries
        for weights in entry.pretrained
        if include_unusable or weights.unusable is None
    ]


def describe(model_name: str) -> str:
    """``"<label> · <what it was trained on>: <what for>"`` for a ``name`` or ``name.tag``: short enough to
    show in full once chosen, what tells a name's versions apart at its end."""
    _, entry, weights = split_name(model_name)
    return " · ".join(filter(None, [entry.label, weights.trained_on.use if weights else ""]))


def explain(model_names: list[str]) -> str:
    """The longer story of ``model_names`` (``name.tag``): each training set's and each name's ``about``,
    every story once (names that share one are listed together)."""
    trained: dict[str, str] = {}
    shared: dict[str, list[str]] = {}  # about -> the labels it tells of
    for model_name in model_names:
        _, entry, weights = split_name(model_name)
        labels = shared.setdefault(entry.about, [])
        if entry.label not in labels:
            labels.append(entry.label)
        if weights is not None:
            trained.setdefault(weights.trained_on.name, weights.trained_on.about)
    entries = [(", ".join(labels), about) for about, labels in shared.items()]
    parts = [f"{name}: {about}" for name, about in [*trained.items(), *entries] if about]
    return ". ".join(parts) + "." if parts else ""


def converter_for(path: Path) -> Family:
    """The family whose converter recognises the original weight file at ``path``."""
    for fam in families().values():
        if fam.converter is not None and fam.converter.recognises(path):
            return fam
    convertible = ", ".join(fam.method for fam in families().values() if fam.converter)
    raise InvalidWeightsError(f"{path.name}: not an original weight file of any family ({convertible})")


# ------------------------------------------------------------------------------------- configs, builds
def validate_config(config: Any) -> dict[str, Any]:
    """``config`` if its family's schema accepts it, else InvalidWeightsError naming the first bad field."""
    if not isinstance(config, dict):
        raise InvalidWeightsError("a config must be a JSON object")
    fam = family_of(config)
    try:
        fam.schema.model_validate(config)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        raise InvalidWeightsError(f"invalid {fam.architecture} config: {where}: {first['msg']}") from None
    return config


def build_model(config: dict[str, Any]) -> PoseModel:
    """An untrained module for a valid ``config`` (:func:`validate_config` first)."""
    return family_of(validate_config(config)).build(config)


def skeleton(config: dict[str, Any]) -> PoseModel:
    """``config``'s model on the meta device: its parameters and state dict's names, shapes and dtypes, and
    no memory (a config naming a huge backbone costs nothing until its weights are known to fit)."""
    with torch.device("meta"):
        return build_model(config)


def validate_state_dict(config: dict[str, Any], tensors: Mapping[str, torch.Tensor]) -> PoseModel:
    """Build ``config``'s model and check ``tensors`` fit it exactly; returns the untrained model.

    Raises :class:`InvalidWeightsError` naming the first problems: unknown architecture, invalid config,
    missing or unexpected tensors, wrong shapes, non-float dtypes, NaN or infinite values.
    """
    expected = skeleton(config).state_dict()
    problems = tensor_problems(expected, {key: tensor_spec(t) for key, t in tensors.items()})
    broken = [] if problems else non_finite(tensors)
    if broken:
        problems.append(
            f"{len(broken)} tensors hold NaN/inf values (e.g. {broken[0]}): the weights are broken "
            "and would only produce NaN angles"
        )
    if problems:
        raise InvalidWeightsError(f"{config.get('name', config['architecture'])}: " + "; ".join(problems[:6]))
    return build_model(config)


def recipe_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The model's pre-processing recipe, validated: the one its config declares, else its family's."""
    declared = config.get("preprocess")
    if declared is not None:
        return validated_recipe(declared, config.get("image_size"))
    return family_of(config).recipe(config)


def method_of(config: Mapping[str, Any]) -> str:
    """The method a model belongs to: its config's ``method``, else its family's."""
    return str(config.get("method") or family_of(config).method)


def provenance(config: Mapping[str, Any], model_name: str = "") -> tuple[str | None, str | None]:
    """``(trained on, protocol)``: what the config states, else what the registry says of ``name.tag``;
    ``None`` for what nobody states."""
    trained_on, protocol = config.get("trained_on"), config.get("protocol")
    if trained_on and protocol:
        return str(trained_on), str(protocol)
    try:
        weights = split_name(model_name.split("@", 1)[0])[2]
    except UnknownModelError:
        weights = None
    if weights is None:
        return (str(trained_on) if trained_on else None), (str(protocol) if protocol else None)
    return weights.trained_on.name, weights.trained_on.protocol
