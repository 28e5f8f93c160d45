"""What a model family declares about itself, in one place: the vocabulary of :mod:`fsanet.models.families`.

A family is one ``config["architecture"]``: its module (tagged with :func:`register_family`) names the
builder, the typed config schema (used by the library when it builds a model and by the leaderboard when
it validates a submission), the pre-processing recipe a config without one gets, its registry names with
their UI labels and pretrained weights (where each file comes from, its sha256, what it was trained on,
its protocol and licence), the method shown on the board, the numbers its paper reports, and how to
recognise and convert the original weight files. :mod:`fsanet.models.catalogue` finds the families and answers
every question about them.

A family registers once: a second family claiming an architecture or a registry name another family holds is
refused (:class:`FamilyConflictError`), so a plug-in can never silently replace a built-in. Built-in families
are imported before any plug-in registers, so they always hold their names.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fsanet.data.recipes import Recipe
from fsanet.errors import FSANetError
from fsanet.models import families as builtin_families

if TYPE_CHECKING:
    import torch

    from fsanet.models.base import PoseModel

Protocol = Literal["protocol 1", "protocol 2"]
Converted = tuple[dict[str, Any], dict[str, "torch.Tensor"]]
# Fields that describe a model without changing what it computes: left out of its config identity.
DESCRIPTIVE_FIELDS = frozenset({"name", "source", "trained_on", "protocol", "method", "derived_from"})


# ------------------------------------------------------------------------------------ config schemas
Source = Annotated[
    dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(max_length=300)]], Field(max_length=8)
]


class ModelConfig(BaseModel):
    """What every config may say about itself; a family's schema adds its own fields (all typed and
    bounded, so nothing downstream can be asked to build 10^9 bins or an empty ensemble)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    architecture: str
    name: Annotated[str, Field(max_length=80)] | None = None
    source: Source | None = None  # where converted weights came from: a few short strings, never code
    derived_from: Source | None = None  # the registry model changed weights started from (its name, source)
    trained_on: Annotated[str, Field(max_length=80)] | None = None
    protocol: Protocol | None = None
    method: Annotated[str, Field(max_length=40)] | None = None
    preprocess: Recipe | None = None


# ----------------------------------------------------------------------------------- pretrained weights
@dataclass(frozen=True)
class TrainingSet:
    """What weights were trained on, the test protocol that follows from it, and when to use them."""

    name: str  # "300W-LP"
    protocol: Protocol
    use: str  # the end of a picker's label, short: "300W-LP: ordinary photos"
    about: str = ""  # the longer story under the picker: "many people, poses up to ±90°"


@dataclass(frozen=True)
class WeightsFile:
    """An original weight file: its path under a mirror (a directory or base URL laid out like the
    upstream repository, ``$mirror_env``, else ``default_mirror``) and its pinned sha256.

    ``sha256`` is ``None`` where the publisher gives none and no pinned copy exists (a Google Drive link):
    such a file is never downloaded, only read from a mirror folder its operator filled, and pointed to
    (``published``). ``max_bytes`` caps what is read or downloaded (default 64 MiB): the file's published
    size where known, else a little above the size expected.
    """

    path: str
    sha256: str | None
    mirror_env: str
    default_mirror: str
    max_bytes: int | None = None
    published: str = ""  # where people download it by hand (a release page, a Drive link)


@dataclass(frozen=True)
class Pretrained:
    """One ``name.tag``: the weights of a registry name, trained on ``trained_on``.

    ``file`` is converted by the family's converter; a composite (the fusion) has ``members`` instead,
    the registry names whose weights of the same tag it is assembled from.
    """

    tag: str
    trained_on: TrainingSet
    licence: str
    file: WeightsFile | None = None
    members: tuple[str, ...] = ()
    unusable: str | None = None  # the shipped file cannot be used (why): not listed, loading it is refused


@dataclass(frozen=True)
class Reported:
    """A number a paper reports for a model, quoted as published: never measured here.

    ``model`` is the registry ``name.tag`` it describes where those weights are the ones shipped (None where
    the paper's model was never released, e.g. a protocol-2 model); ``mae`` is ``(yaw, pitch, roll, mean)``
    in degrees; ``source`` cites the paper and ``table`` the table the numbers are read from; ``trained_on``
    says what the paper's model was trained on where no ``model`` says it.
    """

    benchmark: str  # the board's benchmark name: "aflw2000", "biwi", "biwi_70_30"
    protocol: Protocol
    mae: tuple[float, float, float, float]
    source: str
    table: str
    model: str | None = None
    label: str = ""  # the paper's own name for the row ("Multi-Loss ResNet50 (alpha = 2)")
    note: str = ""  # what differs from the board's protocol, in a few words
    trained_on: str = ""  # "BIWI 70%": only where ``model`` is None (a model's own training set says it)


@dataclass(frozen=True)
class ModelEntry:
    """A registry name: its label in the pickers, its untrained config, its pretrained weights."""

    name: str
    label: str  # short: a picker shows it in full with the training data after it
    config: Callable[[], dict[str, Any]]
    pretrained: tuple[Pretrained, ...] = ()
    reference_graph: WeightsFile | None = None  # the authors' own inference graph, timed by `fsanet bench`
    about: str = ""  # the longer story under the picker

    def weights(self, tag: str) -> Pretrained | None:
        return next((p for p in self.pretrained if p.tag == tag), None)


@dataclass(frozen=True)
class Converter:
    """Original weight files of a family: ``recognises(path)`` says whether a file is one of them,
    ``convert(path, name)`` turns it into ``(config, state_dict)`` for this project's modules."""

    recognises: Callable[[Path], bool]
    convert: Callable[[Path, str | None], Converted]


# ------------------------------------------------------------------------------------------- families
@dataclass(frozen=True)
class Family:
    """Everything the project knows about one architecture (see the module docstring)."""

    architecture: str
    method: str  # the board's method column
    schema: type[ModelConfig]
    model_class: type[PoseModel]  # builds a module from a valid config: ``model_class(config)``
    recipe: Callable[[Mapping[str, Any]], dict[str, Any]]  # pre-processing of a config without "preprocess"
    models: tuple[ModelEntry, ...] = ()
    resolve_name: Callable[[str], ModelEntry | None] | None = None  # names not listed (e.g. any timm model)
    converter: Converter | None = None
    assemble: Callable[[dict[str, Any], list[PoseModel]], PoseModel] | None = None  # composites' members
    # An untrained model of a name with `fsanet train`'s options (timm heads: backbone weights, size...).
    for_training: Callable[[str, Mapping[str, Any]], PoseModel] | None = None
    paper: str = ""  # what the model card cites
    tags: tuple[str, ...] = field(default=())  # Hub tags of the model card
    reported: tuple[Reported, ...] = ()  # the paper's own numbers, beside (never among) the measured rows

    def build(self, config: dict[str, Any]) -> PoseModel:
        return self.model_class(config)

    def entry(self, name: str) -> ModelEntry | None:
        """This family's registry name ``name`` (no tag): listed, or resolved by ``resolve_name``."""
        listed = next((entry for entry in self.models if entry.name == name), None)
        if listed is not None or self.resolve_name is None:
            return listed
        return self.resolve_name(name)


class FamilyConflictError(FSANetError):
    """A family claims an architecture or a registry name another family holds: refused."""


_REGISTERED: dict[str, Family] = {}
_BUILTINS_LOADING = threading.RLock()
_builtins_loaded = False


def register_family(**declaration: Any) -> Callable[[type[PoseModel]], type[PoseModel]]:
    """Class decorator of a family's model class: ``@register_family(architecture=..., method=..., ...)``
    with the other fields of :class:`Family`. The registry finds the family once its module is imported."""

    def decorate(model_class: type[PoseModel]) -> type[PoseModel]:
        add_family(Family(model_class=model_class, **declaration))
        return model_class

    return decorate


def _is_builtin(family: Family) -> bool:
    return family.model_class.__module__.startswith(f"{builtin_families.__name__}.")


def load_builtin_families() -> None:
    """Import every module of :mod:`fsanet.models.families` once (each registers itself). Modules whose
    name starts with ``_`` are helpers of a family (its original files' readers), not families."""
    global _builtins_loaded
    with _BUILTINS_LOADING:
        if _builtins_loaded:
            return
        _builtins_loaded = True  # set first: a built-in module registering re-enters through add_family
        for module in pkgutil.iter_modules(builtin_families.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{builtin_families.__name__}.{module.name}")


def _same_class(a: type, b: type) -> bool:
    """The same class, or the same class defined again (its module imported a second time)."""
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def _conflicts(family: Family) -> list[str]:
    """What ``family`` claims that another registered family holds."""
    problems = []
    held = _REGISTERED.get(family.architecture)
    if held is not None and not _same_class(held.model_class, family.model_class):
        problems.append(f"architecture {family.architecture!r} is {held.method}'s")
    for other in _REGISTERED.values():
        if other.architecture == family.architecture:
            continue
        for entry in family.models:
            if other.entry(entry.name) is not None:
                problems.append(f"the name {entry.name!r} is {other.method}'s")
    return problems


def add_family(family: Family) -> Family:
    """Register ``family`` (what :func:`register_family` does; an entry point may also name a Family).

    A family from outside this package is checked against the built-in families (imported first) and every
    family registered before it: claiming their architecture or one of their names raises
    :class:`FamilyConflictError`, and nothing is registered.
    """
    if not _is_builtin(family):
        load_builtin_families()
    problems = _conflicts(family)
    if problems:
        origin = family.model_class.__module__
        raise FamilyConflictError(
            f"model family {family.method!r} ({origin}) refused: {'; '.join(problems)}. "
            "Choose another architecture and other names: a family never replaces another."
        )
    _REGISTERED[family.architecture] = family
    return family


def registered() -> Mapping[str, Family]:
    """The families whose modules have been imported (the catalogue imports them: use it instead), in one
    order whatever imported them first: the built-ins by module name, then plug-ins as they registered."""
    order = {architecture: index for index, architecture in enumerate(_REGISTERED)}
    ranked = sorted(
        _REGISTERED.values(),
        key=lambda f: (0, f.model_class.__module__, 0) if _is_builtin(f) else (1, "", order[f.architecture]),
    )
    return {family.architecture: family for family in ranked}
