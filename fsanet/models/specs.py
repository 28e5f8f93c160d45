"""Model specs, as timm's: what :func:`load_model` is asked for, and the model it returns.

A spec is a registry name (``fsanet_caps_1x1.biwi``), ``hf-hub:owner/name[@revision]``, ``local-dir:PATH``, or
a plain path of an existing folder. A spec that looks like a path (``./x``, ``/x``, ``~/x``, ``a/b/c``, or
``a/b`` where ``a`` is a local folder) and does not exist is an error naming it: never a Hub request. A bare
``owner/name`` that is neither is taken as a Hub repo id, as ``huggingface_hub`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fsanet.errors import InvalidWeightsError
from fsanet.models.catalogue import is_registry_name, list_models
from fsanet.models.hub import download_model, load_directory
from fsanet.models.pretrained import create_model

if TYPE_CHECKING:
    from fsanet.models.base import PoseModel

HF_HUB_PREFIX, LOCAL_DIR_PREFIX = "hf-hub:", "local-dir:"
# Hub rules: owner/name, letters, digits, '-', '_', '.', no '--' or '..', at most 96 characters each.
REPO_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
REVISION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


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
    parsed = parse_spec(spec, revision)
    if parsed.kind == "registry":
        return create_model(parsed.value, pretrained=True)
    if parsed.kind == "local":
        return load_directory(parsed.value)
    return download_model(parsed.value, parsed.revision)
