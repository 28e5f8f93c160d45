"""timm-style registry: ``list_models()``, ``create_model(name, pretrained=...)``.

Names are ``fsanet_{caps,netvlad,metric}_{1x1,var,uniform}``, ``fsanet_fusion`` (FSA-Caps-Fusion:
mean of the three capsule models), ``ssrnet_md``, ``whenet`` (WHENet, BMVC 2020) and
``fsanet_timm_<backbone>`` for any timm model (not listed: there are hundreds). Pretrained tags say
what the weights were trained on: ``.300w_lp`` (protocol 1), ``.biwi`` (protocol 2, BIWI 70/30) and
``.300w_lp_panoptic`` (WHENet's 300W-LP + CMU Panoptic, protocol 1). Only combinations the authors
shipped weights for have tags.

Where pretrained weights come from, in order:

1. the local cache, ``$FSANET_CACHE`` (default ``~/.cache/fsanet``), one
   ``config.json`` + ``model.safetensors`` directory per tagged name;
2. a Hub repo, when ``FSANET_HUB_REPO`` names one (a folder per tagged name in it);
3. the authors' ``.h5`` under ``FSANET_OFFICIAL_MIRROR`` (WHENet: ``WHENET_OFFICIAL_MIRROR``; a
   base URL or a local directory laid out like the upstream repository), checked against the
   sha256 pinned below, converted once and cached.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fsanet.errors import InvalidWeightsError, UnknownModelError, WeightsUnavailableError
from fsanet.models.base import PoseModel
from fsanet.models.convert import convert_h5
from fsanet.models.factory import build_model
from fsanet.models.fsanet import PoseEnsemble, fsanet_config, ssrnet_md_config
from fsanet.models.hub import load_directory, save_pretrained, validate_state_dict
from fsanet.utils.downloads import cache_dir, download_verified, offline, verify_sha256

DEFAULT_OFFICIAL_MIRROR = "https://github.com/shamangary/FSA-Net/raw/4361d0e48103bb215d15734220c9d17e6812bb48"
TAG_FOLDERS = {"300w_lp": "300W_LP_models", "biwi": "BIWI_models"}
FUSION_MEMBERS = ("fsanet_caps_1x1", "fsanet_caps_var", "fsanet_caps_uniform")

# Our name -> the authors' weight directory name.
OFFICIAL_NAMES = {
    "fsanet_caps_1x1": "fsanet_capsule_3_16_2_21_5",
    "fsanet_caps_var": "fsanet_var_capsule_3_16_2_21_5",
    "fsanet_caps_uniform": "fsanet_noS_capsule_3_16_2_192_5",
    "fsanet_metric_1x1": "fsanet_metric_3_16_2_21_5",
    "fsanet_metric_var": "fsanet_var_metric_3_16_2_21_5",
    "fsanet_metric_uniform": "fsanet_noS_metric_3_16_2_192_5",
    "fsanet_netvlad_1x1": "fsanet_netvlad_3_16_2_21_5",
    "fsanet_netvlad_var": "fsanet_var_netvlad_3_16_2_21_5",
    "fsanet_netvlad_uniform": "fsanet_noS_netvlad_3_16_2_192_5",
    "ssrnet_md": "ssrnet_mt",
}

# sha256 of every file the authors shipped (pre-trained/<folder>/<name>/<name>.h5 at the pinned commit).
OFFICIAL_SHA256 = {
    (
        "300w_lp",
        "fsanet_capsule_3_16_2_21_5",
    ): "51814906b845474e329d4c935636e03475a7d5c675c35e233b69588ef007f67b",
    (
        "300w_lp",
        "fsanet_metric_3_16_2_21_5",
    ): "62fee91749ee9e93fe8e4f82637ea9b951995eb719c4ba86fde8aab3b012917c",
    (
        "300w_lp",
        "fsanet_netvlad_3_16_2_21_5",
    ): "1d3d963cdd59afe2923d900b82bb02218ae01345df60a2072c99ef67837ec5f6",
    (
        "300w_lp",
        "fsanet_noS_capsule_3_16_2_192_5",
    ): "eca4f66b69a0ab1f6c9b0535429c00834197af0094004f761c754d52e67becac",
    (
        "300w_lp",
        "fsanet_noS_metric_3_16_2_192_5",
    ): "a6b0a2e408ed078234778e9d35a681d11d7351cdd43551e184edff2196682e5b",
    (
        "300w_lp",
        "fsanet_var_capsule_3_16_2_21_5",
    ): "64b8163d0102e52da7c42906e03b6d8065c34aac56111eea914413d6698f07a1",
    (
        "300w_lp",
        "fsanet_var_metric_3_16_2_21_5",
    ): "30d104122e99dadb19b16df0ab2310a03fff36920c7f284ebe0d8f81988739ee",
    (
        "300w_lp",
        "fsanet_var_netvlad_3_16_2_21_5",
    ): "359ead6fe156524f877af7810ebcfb81275f2a6384315e237c513e1f88e22ebb",
    ("300w_lp", "ssrnet_mt"): "1016ae85c0ac26727d9bcbb63499993041a1f339ce4517265cf093bbb473ef91",
    (
        "biwi",
        "fsanet_capsule_3_16_2_21_5",
    ): "4ef0297d6ba9d0d9b6594e011e8ed4427d9216f7e284484f88b36ca3c064eb05",
    ("biwi", "fsanet_metric_3_16_2_21_5"): "0fe040ea5986ed0b98f5731f4b9b4e5b02e3edc2de1c8590972d36d9729c3e18",
    (
        "biwi",
        "fsanet_netvlad_3_16_2_21_5",
    ): "dd1c65e4b9f072e8aa3017bec0db6c67c3df855aab86e24748e68a13a278e9b9",
    (
        "biwi",
        "fsanet_noS_capsule_3_16_2_192_5",
    ): "fb8102bc68f9d503280c7f00c724e1a3f0397daec302831ad19c0682d6d1acc8",
    (
        "biwi",
        "fsanet_noS_metric_3_16_2_192_5",
    ): "0a5e89d3b9769e7e4a0c81c5799c7b9ea0084bac37f9271b4c2add7e51f027a1",
    (
        "biwi",
        "fsanet_noS_netvlad_3_16_2_192_5",
    ): "76758e94023a8856954ed4c4c0bbdfa2db5079d3bcda56f3574dfa89435fc61e",
    (
        "biwi",
        "fsanet_var_capsule_3_16_2_21_5",
    ): "644de8ce1f559ecc2c3b1448c6cbd0edbc5913ba150ed191e5115e5ebb3a90f6",
    (
        "biwi",
        "fsanet_var_metric_3_16_2_21_5",
    ): "47823747fb90f1e444502036cec1ea61c762ac44476adcf8536e4659f3285068",
    (
        "biwi",
        "fsanet_var_netvlad_3_16_2_21_5",
    ): "d871545a88e963146ae4278db1952fa4726cec6b0cc9fca1863a8658593d7ab6",
    ("biwi", "ssrnet_mt"): "9e723a9bd6f9c0be5a0e58488e5d3e38f20993827835bd70213d51f327b44ab1",
}


@dataclass(frozen=True)
class PretrainedSource:
    """Where one tagged model's weights come from and how to check them."""

    tag: str
    official_name: str
    sha256: str
    file: str = ""  # path under the mirror; the authors' FSA-Net layout when empty
    mirror_env: str = "FSANET_OFFICIAL_MIRROR"
    default_mirror: str = DEFAULT_OFFICIAL_MIRROR

    @property
    def relative_path(self) -> str:
        if self.file:
            return self.file
        folder = TAG_FOLDERS[self.tag]
        return f"pre-trained/{folder}/{self.official_name}/{self.official_name}.h5"


# WHENet (Zhou & Gregson, BMVC 2020, BSD-3-Clause): the upstream repository's WHENet.h5 at a pinned commit.
DEFAULT_WHENET_MIRROR = "https://github.com/Ascend-Research/HeadPoseEstimation-WHENet/raw/a0d7bdfb5e2ac97ae6b0ae3eef79fdcf4075ab82"
WHENET_SOURCES = {
    "300w_lp_panoptic": PretrainedSource(
        "300w_lp_panoptic",
        "WHENet",
        "8f8bcf924447f7126666cf2c725a633ec2b9ae06afa4699064d3242a02401f59",
        file="WHENet.h5",
        mirror_env="WHENET_OFFICIAL_MIRROR",
        default_mirror=DEFAULT_WHENET_MIRROR,
    )
}

# What each tag's weights were trained on, and so which test protocol they belong to.
TRAINED_ON = {
    "300w_lp": ("300W-LP", "protocol 1"),
    "biwi": ("BIWI 70%", "protocol 2"),
    "300w_lp_panoptic": ("300W-LP + CMU Panoptic", "protocol 1"),
}


def _base_config(name: str) -> dict:
    if name == "whenet":
        from fsanet.models.whenet import whenet_config

        return whenet_config()
    if name == "ssrnet_md":
        return ssrnet_md_config(name=name)
    if name == "fsanet_fusion":
        return {
            "architecture": "ensemble",
            "name": name,
            "members": [_base_config(m) for m in FUSION_MEMBERS],
        }
    _, aggregation, scoring = name.split("_")
    return fsanet_config(aggregation, scoring, name=name)


MODEL_NAMES = (*OFFICIAL_NAMES, "fsanet_fusion", "whenet")
# Tagged weights the authors shipped that cannot be used (value: why): not listed; loading them fails the
# finiteness check of validate_state_dict.
UNUSABLE_WEIGHTS = {"fsanet_netvlad_var.300w_lp": "the authors' file holds NaN weights"}


def _pretrained_sources(name: str) -> dict[str, PretrainedSource]:
    if name == "whenet":
        return WHENET_SOURCES
    official = OFFICIAL_NAMES.get(name)
    return {
        tag: PretrainedSource(tag, official, OFFICIAL_SHA256[(tag, official)])
        for tag in TAG_FOLDERS
        if (tag, official) in OFFICIAL_SHA256
    }


def _tags(name: str) -> list[str]:
    if name == "fsanet_fusion":
        return [tag for tag in TAG_FOLDERS if all(tag in _pretrained_sources(m) for m in FUSION_MEMBERS)]
    return list(_pretrained_sources(name))


def list_models(pretrained: bool = False, include_unusable: bool = False) -> list[str]:
    """Architecture names, or with ``pretrained=True`` every ``name.tag`` that has usable weights.

    ``include_unusable`` adds the shipped but unusable ones (:data:`UNUSABLE_WEIGHTS`).
    """
    if not pretrained:
        return list(MODEL_NAMES)
    tagged = (f"{name}.{tag}" for name in MODEL_NAMES for tag in _tags(name))
    return [name for name in tagged if include_unusable or name not in UNUSABLE_WEIGHTS]


TIMM_PREFIX = "fsanet_timm_"  # fsanet_timm_<any timm model>: an FSA head on that backbone, untrained


def split_name(model_name: str) -> tuple[str, str | None]:
    name, _, tag = model_name.partition(".")
    if name.startswith(TIMM_PREFIX) and not tag:
        return name, None
    if name not in MODEL_NAMES:
        raise UnknownModelError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    if tag and tag not in _tags(name):
        raise UnknownModelError(
            f"no pretrained tag {tag!r} for {name} (available: {', '.join(_tags(name)) or 'none'})"
        )
    return name, tag or None


def create_model(model_name: str, pretrained: bool = False) -> PoseModel:
    """Build ``model_name`` (``name`` or ``name.tag``), untrained or with the authors' weights.

    ``pretrained=True`` without a tag takes the first tag (``300w_lp`` where it exists).
    """
    name, tag = split_name(model_name)
    if name.startswith(TIMM_PREFIX):
        if pretrained:
            raise WeightsUnavailableError(
                f"{name} has no pretrained FSA weights: train it with python -m fsanet train"
            )
        from fsanet.models.timm_head import create_timm_model_by_name

        return create_timm_model_by_name(name).eval()
    if not pretrained:
        return build_model(_base_config(name)).eval()
    tag = tag or (_tags(name) or [None])[0]
    if tag is None:
        raise WeightsUnavailableError(f"the authors shipped no weights for {name}")
    if name == "fsanet_fusion":
        members = [create_model(f"{member}.{tag}", pretrained=True) for member in FUSION_MEMBERS]
        config = {"architecture": "ensemble", "name": f"{name}.{tag}", "members": [], **_provenance(tag)}
        return PoseEnsemble(config, members).eval()
    return _load_pretrained(name, _pretrained_sources(name)[tag])


def _load_pretrained(name: str, source: PretrainedSource) -> PoseModel:
    full_name = f"{name}.{source.tag}"
    cached = cache_dir() / full_name
    if cached.is_dir():
        return load_directory(cached, name=full_name)
    hub_repo = os.environ.get("FSANET_HUB_REPO")
    if hub_repo:
        model = _load_from_hub(hub_repo, full_name)
        if model is not None:
            return model
    config, state = convert_h5_bytes(fetch_official(source), source)
    config["name"] = full_name
    config |= _provenance(source.tag)
    model = validate_state_dict(config, state)  # refuses NaN weights (300W_LP netvlad_var) before caching
    model.load_state_dict(state)
    _store_in_cache(model, cached)
    return model.eval()


def _provenance(tag: str) -> dict[str, str]:
    trained_on, protocol = TRAINED_ON[tag]
    return {"trained_on": trained_on, "protocol": protocol}


def _load_from_hub(repo_id: str, full_name: str) -> PoseModel | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        local = snapshot_download(repo_id, allow_patterns=[f"{full_name}/*"])
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
        return None  # fall through to the official files
    directory = Path(local) / full_name
    return load_directory(directory, name=full_name) if directory.is_dir() else None


def _unavailable(source: PretrainedSource, reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"weights for {source.official_name} ({source.tag}) are not cached and {reason}. "
        f"Set {source.mirror_env} to a directory (or base URL) holding the authors' "
        f"'{source.relative_path}', or put a converted copy in FSANET_CACHE ({cache_dir()}), "
        "or set FSANET_HUB_REPO to a Hub repo with converted weights."
    )


def fetch_official(source: PretrainedSource) -> bytes:
    """The authors' ``.h5`` bytes from the source's mirror (``FSANET_OFFICIAL_MIRROR``...), sha256-checked."""
    mirror = os.environ.get(source.mirror_env) or source.default_mirror
    location = mirror.removeprefix("file://")
    if Path(location).is_dir():
        path = Path(location) / source.relative_path
        if not path.is_file():
            raise _unavailable(source, f"the mirror directory {location} has no {source.relative_path}")
        data = path.read_bytes()
    elif mirror.startswith(("http://", "https://")):
        if offline():
            raise _unavailable(source, f"HF_HUB_OFFLINE is set, so {mirror} is not tried")
        try:
            return download_verified(f"{mirror.rstrip('/')}/{source.relative_path}", source.sha256)
        except WeightsUnavailableError as error:
            if "sha256" in str(error):
                raise
            raise _unavailable(source, str(error)) from error
    else:
        raise _unavailable(
            source, f"{source.mirror_env}={mirror!r} is neither a directory nor an http(s) URL"
        )
    verify_sha256(data, source.sha256, f"{source.relative_path} from {mirror}")
    return data


def convert_h5_bytes(data: bytes, source: PretrainedSource) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"{source.official_name}.h5"
        path.write_bytes(data)
        if source.official_name == "WHENet":
            from fsanet.models.whenet_convert import convert_whenet_h5

            config, state = convert_whenet_h5(path)
        else:
            config, state = convert_h5(path)
    config["source"] = {
        "format": "keras-h5",
        "file": source.relative_path,
        "sha256": source.sha256,
        "mirror_commit": source.default_mirror.rsplit("/", 1)[-1],
    }
    return config, state


def _store_in_cache(model: PoseModel, target: Path) -> None:
    """Write the converted model next to ``target`` and rename it into place (atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        save_pretrained(model, staging)
        os.replace(staging, target)
    except OSError:
        if not target.is_dir():  # another process won the race: its copy is as good
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_model(spec: str, revision: str | None = None) -> PoseModel:
    """A model from a registry ``name[.tag]``, a local directory, or a Hub repo id."""
    if Path(spec).is_dir():
        return load_directory(spec)
    name = spec.partition(".")[0]
    if name in MODEL_NAMES:
        return create_model(spec, pretrained=True)
    if "/" in spec:
        from fsanet.models.hub import from_pretrained

        return from_pretrained(spec, revision=revision)
    raise InvalidWeightsError(
        f"{spec!r} is neither a model name ({', '.join(list_models(pretrained=True)[:3])}, ...), "
        "a directory with config.json + model.safetensors, nor a Hub repo id"
    )
