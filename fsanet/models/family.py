"""What a model family declares about itself, in one place: the vocabulary of :mod:`fsanet.models.families`.

A family is one ``config["architecture"]``: its module (tagged with :func:`register_family`) names the
builder, the typed config schema (used by the library when it builds a model and by the leaderboard when
it validates a submission), the pre-processing recipe a config without one gets, its registry names with
their UI labels and pretrained weights (where each file comes from, its sha256, what it was trained on,
its protocol and licence), the method shown on the board, and how to recognise and convert the original
weight files. :mod:`fsanet.models.registry` finds the families and answers every question about them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fsanet.data.recipes import Recipe

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
    upstream repository, ``$mirror_env``, else ``default_mirror``) and its pinned sha256."""

    path: str
    sha256: str
    mirror_env: str
    default_mirror: str


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

    def build(self, config: dict[str, Any]) -> PoseModel:
        return self.model_class(config)


_REGISTERED: dict[str, Family] = {}


def register_family(**declaration: Any) -> Callable[[type[PoseModel]], type[PoseModel]]:
    """Class decorator of a family's model class: ``@register_family(architecture=..., method=..., ...)``
    with the other fields of :class:`Family`. The registry finds the family once its module is imported."""

    def decorate(model_class: type[PoseModel]) -> type[PoseModel]:
        add_family(Family(model_class=model_class, **declaration))
        return model_class

    return decorate


def add_family(family: Family) -> Family:
    """Register ``family`` (what :func:`register_family` does; an entry point may also name a Family)."""
    _REGISTERED[family.architecture] = family
    return family


def registered() -> Mapping[str, Family]:
    """The families whose modules have been imported (the registry imports them: use it instead)."""
    return _REGISTERED
