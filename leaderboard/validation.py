"""Validation of a submission before anything is built: its one job is to bound the cost of what follows.

Order of checks, cheapest first, each failure a one-line :class:`SubmissionError`:

1. the files (names, no pickle-capable formats, size cap);
2. ``config.json`` against a schema with types and ranges for every field of every accepted architecture
   (so nothing downstream can be asked to build 10^9 bins, 10^7 routings or an empty ensemble);
3. the model skeleton on the meta device (no memory): its parameter count against a cap, and every tensor
   name, shape and dtype of the safetensors *header* against it, before a single weight is read;
4. only then the weights themselves (finite values).

Also here: display names (official ones reserved) and Hub repo ids / revisions (never a path).
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import fsanet
from fsanet.errors import FSANetError
from fsanet.models.factory import build_model
from fsanet.models.hub import CONFIG_NAME, WEIGHTS_NAME, load_weights_file, validate_state_dict
from fsanet.utils.files import sha256_file

from .config import max_params, max_submission_bytes

ALLOWED_EXTRA_FILES = {"README.md", ".gitattributes"}
# Formats that can carry pickled code (or that we simply do not load): refused by name, never opened.
REFUSED_SUFFIXES = {
    ".bin",
    ".pt",
    ".pth",
    ".pkl",
    ".pickle",
    ".ckpt",
    ".h5",
    ".hdf5",
    ".npy",
    ".npz",
    ".joblib",
}
# safetensors dtypes a weight may have: float weights, integer BatchNorm counters. No float8 & co.
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
INT_DTYPES = {"I64", "I32"}
MAX_HEADER_BYTES = 1024 * 1024
MAX_CONFIG_BYTES = 64 * 1024
MAX_MESSAGE = 300
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,79}")
# Hub rules: owner/name, letters, digits, '-', '_', '.', no '--' or '..', at most 96 characters each.
REPO_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
REVISION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class SubmissionError(FSANetError):
    """A submission was rejected; the message (one line) says why."""

    def __init__(self, message: str):
        line = " ".join(str(message).split())
        super().__init__(line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "...")


# ------------------------------------------------------------------------------------------- schema
Small = Annotated[int, Field(ge=1, le=64)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Name = Annotated[str, Field(max_length=80)]
# Where converted weights came from (``fsanet.models.convert``): a few short strings, never code.
Source = Annotated[
    dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(max_length=300)]], Field(max_length=8)
]


class Recipe(BaseModel):
    """A model's pre-processing (:mod:`fsanet.data.recipes`)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    box: Literal["margin", "whenet"] = "margin"
    margin: Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)] | None = None
    crop_end: Literal["inclusive", "exclusive"] | None = None
    square: bool = False
    size: Annotated[int, Field(ge=8, le=1024)] = 64
    interpolation: Literal["linear", "area", "cubic", "nearest"] = "linear"
    color: Literal["rgb", "bgr"] = "rgb"
    minmax: bool | None = None


class _Stated(BaseModel):
    """What every config may say about itself: what it was trained on (the board's protocol), its method
    and its pre-processing."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: Name | None = None
    source: Source | None = None
    trained_on: Annotated[str, Field(max_length=80)] | None = None
    protocol: Literal["protocol 1", "protocol 2"] | None = None
    method: Annotated[str, Field(max_length=40)] | None = None
    preprocess: Recipe | None = None


class _Config(_Stated):
    input_channel_order: Literal["rgb"] = "rgb"
    stage_num: Annotated[list[Annotated[int, Field(ge=1, le=32)]], Field(min_length=3, max_length=3)]
    lambda_d: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)]


class FSANetConfig(_Config):
    architecture: Literal["fsanet"]
    aggregation: Literal["caps", "netvlad", "metric"]
    scoring: Literal["1x1", "var", "uniform"]
    num_capsule: Annotated[int, Field(ge=1, le=16)]
    dim_capsule: Small
    routings: Annotated[int, Field(ge=1, le=10)]
    num_primcaps: Annotated[int, Field(ge=3, le=3 * 64)]
    m_dim: Small
    image_size: Literal[64]  # the two-stream backbone's fixed input

    @model_validator(mode="after")
    def _primary_capsules(self) -> FSANetConfig:
        pixels = 3 * self._pixels_per_stage()
        if self.scoring == "uniform" and self.num_primcaps != pixels:
            raise ValueError(f"num_primcaps must be {pixels} with uniform scoring")
        if self.num_primcaps % 3:
            raise ValueError("num_primcaps must be a multiple of 3 (one share per stage)")
        return self

    def _pixels_per_stage(self) -> int:
        return 64


class TimmFSANetConfig(FSANetConfig):
    architecture: Literal["fsanet_timm"]  # type: ignore[assignment]
    backbone: Annotated[str, Field(pattern=r"^[a-z0-9_.]{1,64}$")]
    out_indices: Annotated[list[Annotated[int, Field(ge=-8, le=8)]], Field(min_length=3, max_length=3)]
    feature_channels: Annotated[list[Annotated[int, Field(ge=1, le=4096)]], Field(min_length=3, max_length=3)]
    grid_size: Annotated[int, Field(ge=1, le=16)]
    mean: Annotated[list[Finite], Field(min_length=3, max_length=3)]
    std: Annotated[
        list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(min_length=3, max_length=3)
    ]
    num_primcaps: Annotated[int, Field(ge=3, le=3 * 256)]
    image_size: Annotated[int, Field(ge=32, le=448)]  # type: ignore[assignment]

    def _pixels_per_stage(self) -> int:
        return self.grid_size**2


class SSRNetMDConfig(_Config):
    architecture: Literal["ssrnet_md"]
    image_size: Literal[64]


class WHENetConfig(_Stated):
    architecture: Literal["whenet"]
    input_channel_order: Literal["rgb"] = "rgb"
    backbone: Literal["tf_efficientnet_b0"]
    yaw_bins: Literal[120]
    pitch_roll_bins: Literal[66]
    image_size: Literal[224]
    mean: Annotated[list[Finite], Field(min_length=3, max_length=3)]
    std: Annotated[
        list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(min_length=3, max_length=3)
    ]


class EnsembleConfig(_Stated):
    architecture: Literal["ensemble"]
    members: Annotated[
        list[Annotated[FSANetConfig | SSRNetMDConfig, Field(discriminator="architecture")]],
        Field(min_length=1, max_length=4),
    ]


SCHEMAS: dict[str, type[BaseModel]] = {
    "fsanet": FSANetConfig,
    "fsanet_timm": TimmFSANetConfig,
    "ssrnet_md": SSRNetMDConfig,
    "ensemble": EnsembleConfig,
    "whenet": WHENetConfig,
}


def validate_config(config: Any) -> dict[str, Any]:
    """``config`` if the schema of its architecture accepts it, else SubmissionError naming the field."""
    if not isinstance(config, dict):
        raise SubmissionError(f"{CONFIG_NAME} must hold a JSON object")
    schema = SCHEMAS.get(config.get("architecture"))  # type: ignore[arg-type]
    if schema is None:
        raise SubmissionError(
            f"{CONFIG_NAME}: architecture {str(config.get('architecture'))[:40]!r} is not accepted "
            f"(accepted: {', '.join(SCHEMAS)})"
        )
    try:
        schema.model_validate(config)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        raise SubmissionError(f"{CONFIG_NAME}: {where}: {first['msg']}") from None
    return config


# --------------------------------------------------------------------------------- weights header
def read_safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{tensor name: (dtype, shape)}`` from the header alone, checked against the file's size."""
    size = path.stat().st_size
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise SubmissionError(f"{WEIGHTS_NAME}: truncated (no header)")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise SubmissionError(f"{WEIGHTS_NAME}: corrupt or truncated header ({length} bytes announced)")
        try:
            header = json.loads(file.read(length))
        except (ValueError, RecursionError):
            raise SubmissionError(f"{WEIGHTS_NAME}: corrupt header (not JSON)") from None
    if not isinstance(header, dict):
        raise SubmissionError(f"{WEIGHTS_NAME}: corrupt header (not an object)")
    data_bytes = size - 8 - length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
            valid = all(isinstance(d, int) and 0 <= d < 2**31 for d in shape) and 0 <= start <= end
        except (TypeError, KeyError, ValueError):
            valid = False
        if not valid or not isinstance(dtype, str):
            raise SubmissionError(f"{WEIGHTS_NAME}: corrupt header entry for {str(name)[:60]!r}")
        if end > data_bytes:
            raise SubmissionError(f"{WEIGHTS_NAME}: truncated ({name} ends past the end of the file)")
        tensors[str(name)] = (dtype, shape)
    return tensors


def check_weights_header(config: dict[str, Any], weights: Path) -> int:
    """Compare the header's tensors with the config's skeleton (meta device); returns the parameter count."""
    with torch.device("meta"):
        expected = build_model(config).state_dict()
    params = sum(math.prod(t.shape) for t in expected.values())
    if params > max_params():
        raise SubmissionError(f"the config implies {params} parameters, over the {max_params()} cap")
    header = read_safetensors_header(weights)
    missing, unexpected = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing:
        raise SubmissionError(f"{WEIGHTS_NAME}: missing tensors {missing[:3]} ({len(missing)} in all)")
    if unexpected:
        raise SubmissionError(
            f"{WEIGHTS_NAME}: unexpected tensors {unexpected[:3]} ({len(unexpected)} in all)"
        )
    for key, reference in expected.items():
        dtype, shape = header[key]
        if shape != tuple(reference.shape):
            raise SubmissionError(f"{key}: shape {shape}, architecture needs {tuple(reference.shape)}")
        allowed = FLOAT_DTYPES if reference.is_floating_point() else INT_DTYPES
        if dtype not in allowed:
            raise SubmissionError(f"{key}: dtype {dtype} is not accepted (use {'/'.join(sorted(allowed))})")
    return params


# ------------------------------------------------------------------------------------- the folder
def validate_submission(directory: str | Path) -> dict[str, Any]:
    """Check a submission folder: ``{"config", "weights_sha256", "bytes", "params"}``, or SubmissionError.

    Any other exception on the way (a file system error, a builder's surprise) is reported the same way,
    as one line: a submission can never surface a stack trace.
    """
    try:
        return _validate_folder(Path(directory))
    except SubmissionError:
        raise
    except (Exception, RecursionError) as error:  # noqa: BLE001  (the contract: only SubmissionError)
        raise SubmissionError(f"invalid submission: {type(error).__name__}: {error}") from None


def _validate_folder(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise SubmissionError("the submission is not a folder")
    files = [p for p in directory.iterdir() if p.is_file() or p.is_dir()]
    for path in files:
        name = path.name
        if path.suffix.lower() in REFUSED_SUFFIXES:
            raise SubmissionError(
                f"{name[:60]}: pickle-capable weight files are not accepted; submit {WEIGHTS_NAME}"
            )
        if name not in (CONFIG_NAME, WEIGHTS_NAME, *ALLOWED_EXTRA_FILES, ".cache") or path.is_dir() != (
            name == ".cache"
        ):
            raise SubmissionError(
                f"{name[:60]}: unexpected file (a submission is {CONFIG_NAME} + {WEIGHTS_NAME})"
            )
    for required in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / required).is_file():
            raise SubmissionError(f"missing {required}")
    size = sum(p.stat().st_size for p in files if p.is_file())
    if size > max_submission_bytes():
        raise SubmissionError(f"{size} bytes is over the {max_submission_bytes()}-byte submission cap")
    if (directory / CONFIG_NAME).stat().st_size > MAX_CONFIG_BYTES:
        raise SubmissionError(f"{CONFIG_NAME} is over {MAX_CONFIG_BYTES} bytes")
    try:
        config = json.loads((directory / CONFIG_NAME).read_bytes())
    except (ValueError, RecursionError):
        raise SubmissionError(f"{CONFIG_NAME} is not valid JSON") from None
    validate_config(config)
    params = check_weights_header(config, directory / WEIGHTS_NAME)
    try:  # shapes and dtypes are known to fit: reading and building now cost what the cap allows
        tensors = load_weights_file(directory / WEIGHTS_NAME)
        validate_state_dict(config, tensors)
    except FSANetError as error:
        raise SubmissionError(str(error)) from None
    return {
        "config": config,
        "weights_sha256": sha256_file(directory / WEIGHTS_NAME),
        "bytes": size,
        "params": params,
    }


# ------------------------------------------------------------------------------- names and repos
def official_names() -> set[str]:
    """Every name the registry owns (lower-case): architectures and their pretrained tags."""
    return {name.lower() for name in (*fsanet.list_models(), *fsanet.list_models(pretrained=True))}


def validate_name(name: str) -> str:
    """A display name for the board: plain characters, not one of the registry's."""
    name = name.strip()
    if not NAME_PATTERN.fullmatch(name):
        raise SubmissionError(
            "a name is 1-80 letters, digits and . _ / + - (starting with a letter or digit)"
        )
    if name.lower() in official_names():
        raise SubmissionError(f"{name!r} is an official model name: choose another name for your variant")
    return name


def validate_repo_id(repo_id: str) -> str:
    """A Hub model repo id ``owner/name`` by the Hub's rules; never a path (nothing is looked up)."""
    repo_id = repo_id.strip()
    if (
        not REPO_ID_PATTERN.fullmatch(repo_id)
        or "--" in repo_id
        or ".." in repo_id
        or repo_id.endswith((".git", "."))
    ):
        raise SubmissionError(f"{repo_id[:60]!r} is not a Hub repo id (owner/name)")
    return repo_id


def validate_revision(revision: str) -> str:
    revision = revision.strip()
    if not REVISION_PATTERN.fullmatch(revision) or ".." in revision:
        raise SubmissionError(f"{revision[:60]!r} is not a revision (a commit, tag or branch name)")
    return revision
