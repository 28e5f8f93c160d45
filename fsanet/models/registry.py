"""The one catalogue of models, timm-style: ``list_models()``, ``create_model(name, pretrained=...)``,
``load_model(spec)``, and every question about a family (schema, recipe, method, provenance, labels).

Families are found, never listed: every module of :mod:`fsanet.models.families`, and every module (or
:class:`~fsanet.models.family.Family`) another installed package declares under the ``fsanet.families``
entry-point group, is imported once, and each registers itself (:func:`fsanet.register_family`).

Names are ``<name>`` (untrained) or ``<name>.<tag>`` (pretrained weights, where a family ships them). Where a
``name.tag``'s weights come from, in order:

1. the local cache, ``$FSANET_CACHE`` (default ``~/.cache/fsanet``), one ``config.json`` +
   ``model.safetensors`` directory per ``name.tag``;
2. a Hub repo, when ``FSANET_HUB_REPO`` names one (a folder per ``name.tag`` in it);
3. the family's original file under its mirror (``FSANET_OFFICIAL_MIRROR`` or the family's own: a
   base URL or a local directory laid out like the upstream repository), checked against its pinned sha256,
   converted by the family's converter once and cached.

Model specs (:func:`load_model`): a registry name, ``hf-hub:owner/name[@revision]``, ``local-dir:PATH``, or a
plain path of an existing folder. A spec that looks like a path (``./x``, ``/x``, ``~/x``, ``a/b/c``, or
``a/b`` where ``a`` is a local folder) and does not exist is an error naming it: never a Hub request. A bare
``owner/name`` that is neither is taken as a Hub repo id, as ``huggingface_hub`` does.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import pkgutil
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import ValidationError

from fsanet.data.recipes import validated_recipe
from fsanet.errors import InvalidWeightsError, UnknownModelError, WeightsUnavailableError
from fsanet.models import families as builtin_families
from fsanet.models.family import (
    DESCRIPTIVE_FIELDS,
    Family,
    ModelEntry,
    Pretrained,
    WeightsFile,
    add_family,
    registered,
)
from fsanet.models.weights import non_finite, tensor_problems, tensor_spec, weights_identity
from fsanet.utils import settings
from fsanet.utils.downloads import download_verified, verify_sha256

if TYPE_CHECKING:
    from fsanet.models.base import PoseModel

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fsanet.families"
HF_HUB_PREFIX, LOCAL_DIR_PREFIX = "hf-hub:", "local-dir:"
# Hub rules: owner/name, letters, digits, '-', '_', '.', no '--' or '..', at most 96 characters each.
REPO_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
REVISION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_discovery = threading.RLock()
_discovered = False


# ------------------------------------------------------------------------------------------ discovery
def families() -> Mapping[str, Family]:
    """Every family, by architecture: this package's modules and the ``fsanet.families`` entry points."""
    global _discovered
    if not _discovered:
        with _discovery:
            if not _discovered:
                for module in pkgutil.iter_modules(builtin_families.__path__):
                    importlib.import_module(f"{builtin_families.__name__}.{module.name}")
                for entry_point in entry_points(group=ENTRY_POINT_GROUP):
                    _load_entry_point(entry_point)
                _discovered = True
    return registered()


def _load_entry_point(entry_point: Any) -> None:
    """Import a declared family module (it registers itself), or register a declared Family object."""
    try:
        loaded = entry_point.load()
    except Exception as error:  # noqa: BLE001  (a broken plug-in must not take the built-in families down)
        log.warning("model family %r (%s) did not load: %s", entry_point.name, entry_point.value, error)
        return
    if isinstance(loaded, Family):
        add_family(loaded)


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


def _listed() -> dict[str, tuple[Family, ModelEntry]]:
    return {entry.name: (fam, entry) for fam in families().values() for entry in fam.models}


def model_entry(name: str) -> ModelEntry:
    """The registry name ``name`` (no tag), listed or resolved by a family (``fsanet_timm_<backbone>``)."""
    return _entry(name)[1]


def _entry(name: str) -> tuple[Family, ModelEntry]:
    listed = _listed()
    if name in listed:
        return listed[name]
    for fam in families().values():
        entry = fam.resolve_name(name) if fam.resolve_name else None
        if entry is not None:
            return fam, entry
    raise UnknownModelError(f"unknown model {name[:80]!r}; known: {', '.join(listed)}")


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


# ----------------------------------------------------------------------------------- pretrained models
def create_model(model_name: str, pretrained: bool = False) -> PoseModel:
    """Build ``model_name`` (``name`` or ``name.tag``), untrained or with its pretrained weights.

    ``pretrained=True`` without a tag takes the name's first tag (``300w_lp`` for the authors' models).
    """
    fam, entry, weights = split_name(model_name)
    if not pretrained:
        return build_model(entry.config()).eval()
    weights = weights or (entry.pretrained[0] if entry.pretrained else None)
    if weights is None:
        raise WeightsUnavailableError(
            f"{entry.name} has no pretrained weights: train it with python -m fsanet train"
        )
    return _load_pretrained(fam, entry, weights)


def _load_pretrained(fam: Family, entry: ModelEntry, weights: Pretrained) -> PoseModel:
    from fsanet.models.hub import load_directory

    full_name = f"{entry.name}.{weights.tag}"
    trained_on = weights.trained_on
    stated = {"name": full_name, "trained_on": trained_on.name, "protocol": trained_on.protocol}
    if weights.members:
        members = [create_model(f"{member}.{weights.tag}", pretrained=True) for member in weights.members]
        assemble = fam.assemble or (lambda config, _: fam.build(config))
        return assemble({"architecture": fam.architecture, "members": [], **stated}, members).eval()
    cached = settings.cache_dir() / full_name
    if cached.is_dir():
        return load_directory(cached, name=full_name)
    model = _load_from_hub(settings.hub_repo(), full_name) if settings.hub_repo() else None
    if model is not None:
        return model
    if weights.file is None or fam.converter is None:
        raise WeightsUnavailableError(f"{full_name} is not cached and its family names no file to convert")
    config, state = convert_original(fam, weights.file, full_name)
    config |= stated
    model = validate_state_dict(config, state)  # refuses NaN weights (300W_LP netvlad_var) before caching
    model.load_state_dict(state)
    _store_in_cache(model, cached)
    return model.eval()


def _load_from_hub(repo_id: str, full_name: str) -> PoseModel | None:
    from fsanet.models.hub import download_snapshot, load_directory

    try:
        local = download_snapshot(repo_id, None, [f"{full_name}/*"])
    except WeightsUnavailableError:
        return None  # fall through to the original files
    directory = local / full_name
    return load_directory(directory, name=full_name) if directory.is_dir() else None


def _unavailable(what: str, file: WeightsFile, reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"weights for {what} are not cached and {reason}. Set {file.mirror_env} to a directory (or base URL) "
        f"holding the upstream '{file.path}', or put a converted copy in FSANET_CACHE, or set "
        "FSANET_HUB_REPO to a Hub repo with converted weights."
    )


def fetch_original(file: WeightsFile, what: str) -> bytes:
    """An original weight file's bytes from its mirror (``FSANET_OFFICIAL_MIRROR``...), sha256-checked;
    ``what`` names it in messages (``fsanet_caps_1x1.biwi``)."""
    mirror = settings.mirror(file.mirror_env, file.default_mirror)
    location = mirror.removeprefix("file://")
    if Path(location).is_dir():
        path = Path(location) / file.path
        if not path.is_file():
            raise _unavailable(what, file, f"the mirror directory ({file.mirror_env}) has no {file.path}")
        data = path.read_bytes()
    elif mirror.startswith(("http://", "https://")):
        if settings.offline():
            raise _unavailable(what, file, f"HF_HUB_OFFLINE is set, so {mirror} is not tried")
        try:
            return download_verified(f"{mirror.rstrip('/')}/{file.path}", file.sha256)
        except WeightsUnavailableError as error:
            if "sha256" in str(error):
                raise
            raise _unavailable(what, file, str(error)) from error
    else:
        raise _unavailable(
            what, file, f"{file.mirror_env}={mirror!r} is neither a directory nor an http(s) URL"
        )
    verify_sha256(data, file.sha256, f"{file.path} from {mirror}")
    return data


def convert_original(
    fam: Family, file: WeightsFile, what: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Fetch and convert an original weight file with its family's converter; the config says whence."""
    assert fam.converter is not None
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / Path(file.path).name
        path.write_bytes(fetch_original(file, what))
        config, state = fam.converter.convert(path, None)
    config["source"] = {
        "format": path.suffix.lstrip(".") or "original",
        "file": file.path,
        "sha256": file.sha256,
        "mirror_commit": file.default_mirror.rsplit("/", 1)[-1],
    }
    return config, state


def converter_for(path: Path) -> Family:
    """The family whose converter recognises the original weight file at ``path``."""
    for fam in families().values():
        if fam.converter is not None and fam.converter.recognises(path):
            return fam
    convertible = ", ".join(fam.method for fam in families().values() if fam.converter)
    raise InvalidWeightsError(f"{path.name}: not an original weight file of any family ({convertible})")


def _store_in_cache(model: PoseModel, target: Path) -> None:
    """Write the converted model next to ``target`` and rename it into place (atomic)."""
    from fsanet.models.hub import write_model_files

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        write_model_files(model, staging)
        staging.rename(target)
    except OSError:
        if not target.is_dir():  # another process won the race: its copy is as good
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------------------- model specs
@dataclass(frozen=True)
class ModelSpec:
    """What :func:`load_model` was asked for: a registry name, a Hub repo (at a revision), a local folder."""

    kind: Literal["registry", "hub", "local"]
    value: str
    revision: str | None = None


def is_repo_id(text: str) -> bool:
    """Whether ``text`` is a Hub repo id ``owner/name`` by the Hub's rules (nothing is looked up)."""
    return (
        bool(REPO_ID_PATTERN.fullmatch(text))
        and ".." not in text
        and "--" not in text
        and not (text.endswith((".git", ".")))
    )


def is_revision(text: str) -> bool:
    return bool(REVISION_PATTERN.fullmatch(text)) and ".." not in text


def _looks_like_path(text: str) -> bool:
    parent = Path(text).expanduser().parent
    return (
        text.startswith(("/", ".", "~"))
        or "\\" in text
        or text.endswith("/")
        or text.count("/") > 1
        or (str(parent) not in ("", ".") and parent.is_dir())
    )


def parse_spec(spec: str | Path, revision: str | None = None) -> ModelSpec:
    """Read a model spec (see the module docstring); a path-like spec that does not exist is an error."""
    text = str(spec).strip()
    if text.startswith(HF_HUB_PREFIX):
        repo_id, _, pinned = text.removeprefix(HF_HUB_PREFIX).partition("@")
        revision = pinned or revision
        if not is_repo_id(repo_id) or (revision is not None and not is_revision(revision)):
            raise InvalidWeightsError(f"{text[:100]!r} is not hf-hub:owner/name[@revision]")
        return ModelSpec("hub", repo_id, revision)
    if text.startswith(LOCAL_DIR_PREFIX):
        folder = Path(text.removeprefix(LOCAL_DIR_PREFIX)).expanduser()
        if not folder.is_dir():
            raise InvalidWeightsError(f"{folder}: no such folder")
        return ModelSpec("local", str(folder))
    if isinstance(spec, str) and is_registry_name(text):
        return ModelSpec("registry", text)
    if Path(text).expanduser().is_dir():
        return ModelSpec("local", str(Path(text).expanduser()))
    if _looks_like_path(text):
        raise InvalidWeightsError(
            f"{text}: no such folder (for a Hub repo write hf-hub:owner/name, for a model see fsanet list)"
        )
    if is_repo_id(text):
        return ModelSpec("hub", text, revision)
    raise InvalidWeightsError(
        f"{text[:100]!r} is neither a model name ({', '.join(list_models(pretrained=True)[:3])}, ...), "
        "a folder with config.json + model.safetensors, nor a Hub repo id (hf-hub:owner/name)"
    )


def load_model(spec: str | Path, revision: str | None = None) -> PoseModel:
    """A model in eval mode from a registry ``name[.tag]``, a folder or a Hub repo (:func:`parse_spec`)."""
    from fsanet.models.hub import download_model, load_directory

    parsed = parse_spec(spec, revision)
    if parsed.kind == "registry":
        return create_model(parsed.value, pretrained=True)
    if parsed.kind == "local":
        return load_directory(parsed.value)
    return download_model(parsed.value, parsed.revision)
