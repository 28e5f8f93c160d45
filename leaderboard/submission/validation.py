"""Validation of a submission before anything is built: its one job is to bound the cost of what follows.

Order of checks, cheapest first, each failure a one-line :class:`SubmissionError`:

1. the files (names, no pickle-capable formats, size cap);
2. ``config.json`` against its family's schema (:func:`fsanet.models.registry.validate_config`: types and
   ranges for every field, so nothing downstream can be asked to build 10^9 bins or an empty ensemble);
3. the model skeleton on the meta device (no memory), built once: its parameter count against a cap, and
   every tensor name, shape and dtype of the safetensors *header* against it, before a single weight is read;
4. only then the weights themselves (finite values), and the model's identity
   (:func:`fsanet.models.registry.identify`) that every duplicate check and the row's key use.

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
from fsanet.models.registry import ModelIdentity, build_model, identify, skeleton, validate_config
from fsanet.models.weights import (
    WEIGHTS_NAME,
    load_weights_file,
    non_finite,
    read_safetensors_header,
    tensor_problems,
)

from ..settings import max_params, max_submission_bytes

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
MAX_MESSAGE = 300


class SubmissionError(FSANetError):
    """A submission was rejected; the message (one line) says why."""

    def __init__(self, message: str):
        line = " ".join(str(message).split())
        super().__init__(line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "...")


@dataclass(frozen=True)
class ValidSubmission:
    """A submission that passed every check: what it is, what it weighs, and who it is."""

    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    identity: ModelIdentity
    params: int
    bytes: int

    def model(self) -> PoseModel:
        """The model in eval mode (the one real build of a validated submission)."""
        model = build_model(self.config)
        model.load_state_dict(self.tensors)
        return model.eval()


def validate_submission(directory: str | Path) -> ValidSubmission:
    """Check a submission folder; SubmissionError (one line) for anything wrong.

    Any other exception on the way (a file system error, a builder's surprise) is reported the same way,
    as one line: a submission can never surface a stack trace.
    """
    try:
        return _validate_folder(Path(directory))
    except SubmissionError:
        raise
    except FSANetError as error:
        raise SubmissionError(str(error)) from None
    except (Exception, RecursionError) as error:  # noqa: BLE001  (the contract: only SubmissionError)
        raise SubmissionError(f"invalid submission: {type(error).__name__}: {error}") from None


def _validate_folder(directory: Path) -> ValidSubmission:
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
    try:
        validate_config(config)
    except FSANetError as error:
        raise SubmissionError(f"{CONFIG_NAME}: {error}") from None
    meta = skeleton(config)
    params = parameter_count(meta)
    if params > max_params():
        raise SubmissionError(f"the config implies {params} parameters, over the {max_params()} cap")
    expected = meta.state_dict()
    problems = tensor_problems(expected, read_safetensors_header(directory / WEIGHTS_NAME))
    if problems:
        raise SubmissionError(f"{WEIGHTS_NAME}: {problems[0]}")
    # Names, shapes and dtypes are known to fit: reading the weights now costs what the caps allow.
    tensors = load_weights_file(directory / WEIGHTS_NAME)
    broken = non_finite(tensors)
    if broken:
        raise SubmissionError(f"{WEIGHTS_NAME}: {len(broken)} tensors hold NaN/inf values (e.g. {broken[0]})")
    return ValidSubmission(config, tensors, identify(config, tensors), params, size)
