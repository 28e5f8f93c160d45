"""Validation of a submission before anything is built: its one job is to bound the cost of what follows.

Order of checks, cheapest first, each failure a one-line :class:`~leaderboard.errors.SubmissionError`:

1. the files (names, no pickle-capable formats, size cap);
2. ``config.json`` (with what the submitter stated on the form) against its family's schema, once
   (:func:`fsanet.models.registry.validate_config`: types and ranges for every field, so nothing downstream
   can be asked to build 10^9 bins or an empty ensemble);
3. the model skeleton on the meta device (no memory), built once: its parameter count against a cap, whether
   it takes the crop its recipe cuts, what scoring it would cost (:mod:`.budget`: the submission refuses it
   over the evaluation's memory budget), and every tensor name, shape and dtype of the safetensors *header*
   against it, before a single weight is read;
4. only then the weights themselves (finite as the float32 numbers the model runs), and the model's identity
   (:func:`fsanet.models.registry.identify`), computed once: every duplicate check, the request and the row
   use it, and the model built from the submission carries it (:meth:`ValidSubmission.model`).

The Space's ``/submit``, ``python -m leaderboard submit`` and the worker (on the stored files, in the
evaluation's child process) run this same function.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fsanet.errors import FSANetError
from fsanet.models.base import PoseModel, parameter_count
from fsanet.models.hub import CARD_NAME, CONFIG_NAME, MAX_CONFIG_BYTES
from fsanet.models.identity_cache import carry_identity
from fsanet.models.registry import ModelIdentity, family_of, identify, recipe_of, validate_config
from fsanet.models.weights import (
    WEIGHTS_NAME,
    load_weights_file,
    non_finite,
    read_safetensors_header,
    tensor_problems,
)

from ..errors import SubmissionError
from ..protocol.runner import input_side
from ..settings import max_params, max_submission_bytes
from .budget import evaluation_bytes

ALLOWED_EXTRA_FILES = {CARD_NAME, ".gitattributes"}
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


@dataclass(frozen=True)
class ValidSubmission:
    """A submission that passed every check: what it is, what it weighs, and who it is."""

    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    identity: ModelIdentity
    params: int
    bytes: int
    memory_bytes: int  # what scoring it needs (:func:`.budget.evaluation_bytes`)

    def model(self) -> PoseModel:
        """The model in eval mode, carrying its identity (the one real build of a validated submission: the
        config was validated, so the family builds it directly)."""
        model = family_of(self.config).build(self.config)
        model.load_state_dict(self.tensors)
        carry_identity(model, self.identity)
        return model.eval()


def validate_submission(
    directory: str | Path, stated: dict[str, str | None] | None = None
) -> ValidSubmission:
    """Check a submission folder; SubmissionError (one line) for anything wrong. ``stated``: ``trained_on``
    and ``protocol`` as the submitter stated them (the Submit tab's fields), recorded in the config where its
    ``config.json`` is silent (descriptive only: the identity does not change).

    Any other exception on the way (a file system error, a builder's surprise) is reported the same way,
    as one line: a submission can never surface a stack trace.
    """
    try:
        return _validate_folder(Path(directory), stated or {})
    except SubmissionError:
        raise
    except FSANetError as error:
        raise SubmissionError(str(error)) from None
    except (Exception, RecursionError) as error:  # noqa: BLE001  (the contract: only SubmissionError)
        raise SubmissionError(f"invalid submission: {type(error).__name__}: {error}") from None


def _check_files(directory: Path) -> int:
    """The folder holds a submission's files and nothing else; returns their size."""
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
    return size


def _with_stated(config: Any, stated: dict[str, str | None]) -> Any:
    """``config`` with ``stated`` (``trained_on``, ``protocol``) where it says nothing; a contradiction is
    refused."""
    wanted = {key: value for key, value in stated.items() if value}
    if not wanted or not isinstance(config, dict):
        return config
    for key, value in wanted.items():
        if config.get(key) not in (None, value):
            raise SubmissionError(f"config.json says {key} {config[key]!r}, the form {value!r}: choose one")
    return {**config, **wanted}


def _check_skeleton(meta: PoseModel) -> int:
    """The model skeleton (meta device) within the caps and taking its own crop; returns its parameters."""
    params = parameter_count(meta)
    if params > max_params():
        raise SubmissionError(f"the config implies {params} parameters, over the {max_params()} cap")
    crop = int(recipe_of(meta.config)["size"])
    if crop != meta.input_size and not meta.resizes_input:
        raise SubmissionError(
            f"{CONFIG_NAME}: preprocess size {crop} is not an input size this model takes "
            f"({meta.input_size}x{meta.input_size} only)"
        )
    return params


def _validate_folder(directory: Path, stated: dict[str, str | None]) -> ValidSubmission:
    size = _check_files(directory)
    try:
        config = _with_stated(json.loads((directory / CONFIG_NAME).read_bytes()), stated)
    except (ValueError, RecursionError):
        raise SubmissionError(f"{CONFIG_NAME} is not valid JSON") from None
    try:
        validate_config(config)
    except FSANetError as error:
        raise SubmissionError(f"{CONFIG_NAME}: {error}") from None
    with torch.device("meta"):  # validated above: the family builds it directly, on no memory
        meta = family_of(config).build(config)
    params = _check_skeleton(meta)
    problems = tensor_problems(meta.state_dict(), read_safetensors_header(directory / WEIGHTS_NAME))
    if problems:
        raise SubmissionError(f"{WEIGHTS_NAME}: {problems[0]}")
    # Names, shapes and dtypes are known to fit: reading the weights now costs what the caps allow.
    tensors = load_weights_file(directory / WEIGHTS_NAME)
    broken = non_finite(tensors)
    if broken:
        raise SubmissionError(
            f"{WEIGHTS_NAME}: {len(broken)} tensors hold NaN/inf values as float32 (e.g. {broken[0]})"
        )
    memory = evaluation_bytes(params, input_side(meta))
    return ValidSubmission(config, tensors, identify(config, tensors), params, size, memory)
