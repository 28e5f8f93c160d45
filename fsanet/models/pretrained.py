"""Where a ``name.tag``'s weights come from, in order:

1. the local cache, ``$FSANET_CACHE`` (default ``~/.cache/fsanet``), one ``config.json`` +
   ``model.safetensors`` directory per ``name.tag``;
2. a Hub repo, when ``FSANET_HUB_REPO`` names one (a folder per ``name.tag`` in it);
3. the family's original file, checked against its pinned sha256, converted by the family's converter once
   and cached: from the assets folder (``FSANET_ASSETS``, where the Space bundle ships the originals no pip
   install provides) when it holds the file, else under its mirror (``FSANET_OFFICIAL_MIRROR`` or the
   family's own: a base URL or a local directory laid out like the upstream repository or Hub repo).

A file published without any checksum (``WeightsFile.sha256`` is None) is never downloaded: only a copy in a
local mirror directory the operator set is converted, and its own sha256 is recorded in the config.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fsanet.errors import WeightsUnavailableError
from fsanet.models.catalogue import build_model, split_name, validate_state_dict
from fsanet.models.family import Family, ModelEntry, Pretrained, WeightsFile
from fsanet.models.hub import download_snapshot, load_directory, write_model_files
from fsanet.utils import settings
from fsanet.utils.downloads import MAX_DOWNLOAD_BYTES, download_verified, verify_sha256

if TYPE_CHECKING:
    from fsanet.models.base import PoseModel

log = logging.getLogger(__name__)


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
    try:
        local = download_snapshot(repo_id, None, [f"{full_name}/*"])
    except WeightsUnavailableError:
        return None  # fall through to the original files
    directory = local / full_name
    return load_directory(directory, name=full_name) if directory.is_dir() else None


def _unavailable(what: str, file: WeightsFile, reason: str) -> WeightsUnavailableError:
    where = f" (published at {file.published})" if file.published else ""
    return WeightsUnavailableError(
        f"weights for {what} are not cached and {reason}. Set {file.mirror_env} to a directory (or base URL) "
        f"holding the upstream '{file.path}'{where}, or put a converted copy in FSANET_CACHE, or set "
        "FSANET_HUB_REPO to a Hub repo with converted weights."
    )


def fetch_original(file: WeightsFile, what: str) -> bytes:
    """An original weight file's bytes from its mirror (``FSANET_OFFICIAL_MIRROR``...), sha256-checked;
    ``what`` names it in messages (``fsanet_caps_1x1.biwi``); a pinned copy in the assets folder first."""
    mirror = settings.mirror(file.mirror_env, file.default_mirror)
    location = mirror.removeprefix("file://")
    cap = file.max_bytes or MAX_DOWNLOAD_BYTES
    shipped = settings.assets_dir() / file.path
    if file.sha256 is not None and shipped.is_file() and shipped.stat().st_size <= cap:
        mirror, data = str(shipped.parent), shipped.read_bytes()
    elif location and Path(location).is_dir():
        path = Path(location) / file.path
        if not path.is_file():
            raise _unavailable(what, file, f"the mirror directory ({file.mirror_env}) has no {file.path}")
        if path.stat().st_size > cap:
            raise _unavailable(what, file, f"{path.name} in {file.mirror_env} is over {cap} bytes")
        data = path.read_bytes()
    elif file.sha256 is None:
        raise _unavailable(
            what,
            file,
            "no checksum is published for it: it is never downloaded, only read from a folder",
        )
    elif mirror.startswith(("http://", "https://")):
        if settings.offline():
            raise _unavailable(what, file, f"HF_HUB_OFFLINE is set, so {mirror} is not tried")
        try:
            return download_verified(f"{mirror.rstrip('/')}/{file.path}", file.sha256, cap)
        except WeightsUnavailableError as error:
            if "sha256" in str(error):
                raise
            raise _unavailable(what, file, str(error)) from error
    else:
        raise _unavailable(
            what, file, f"{file.mirror_env}={mirror!r} is neither a directory nor an http(s) URL"
        )
    if file.sha256 is None:
        log.warning("%s: no checksum is published for %s; the mirror's copy is converted", what, file.path)
    else:
        verify_sha256(data, file.sha256, f"{file.path} from {mirror}")
    return data


def convert_original(
    fam: Family, file: WeightsFile, what: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Fetch and convert an original weight file with its family's converter; the config says whence."""
    assert fam.converter is not None
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / Path(file.path).name
        data = fetch_original(file, what)
        path.write_bytes(data)
        config, state = fam.converter.convert(path, None)
    config["source"] = {
        "format": path.suffix.lstrip(".") or "original",
        "file": file.path,
        "sha256": file.sha256 or hashlib.sha256(data).hexdigest(),
        "mirror_commit": file.default_mirror.rsplit("/", 1)[-1],
    }
    if file.sha256 is None:
        config["source"]["checksum"] = "none published: the sha256 of the copy converted"
    return config, state


def _store_in_cache(model: PoseModel, target: Path) -> None:
    """Write the converted model next to ``target`` and rename it into place (atomic)."""
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
