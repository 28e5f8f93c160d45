"""``config.json`` + ``model.safetensors`` on disk and on the Hugging Face Hub, as ``huggingface_hub`` does.

No pickle anywhere: weights are read only through ``safetensors`` and configs through JSON.
Every load checks the tensors against the architecture the config names (names, shapes,
dtype, finiteness) before they reach a module, so a bad file fails with a reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from fsanet.errors import InvalidWeightsError, WeightsUnavailableError
from fsanet.models.factory import build_model
from fsanet.utils.files import atomic_write

if TYPE_CHECKING:
    from fsanet.models.base import PoseModel

CONFIG_NAME = "config.json"
TRAINING_MODEL_DIR = "model"  # where `python -m fsanet train` saves the latest model of a run
WEIGHTS_NAME = "model.safetensors"
MAX_WEIGHTS_BYTES = 512 * 1024 * 1024  # far above any FSA variant (a few MB); stops absurd uploads


def _state_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}


def weights_bytes(model: torch.nn.Module) -> bytes:
    """The model's ``model.safetensors`` content (deterministic for the same weights)."""
    return save_safetensors_bytes(_state_for_saving(model))


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 of the model's safetensors serialisation: the leaderboard's weights identity."""
    return hashlib.sha256(weights_bytes(model)).hexdigest()


def save_pretrained(model: PoseModel, directory: str | os.PathLike) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory`` (each atomically)."""
    directory = Path(directory)
    atomic_write(directory / WEIGHTS_NAME, weights_bytes(model))
    atomic_write(directory / CONFIG_NAME, json.dumps(model.config, indent=2, sort_keys=True).encode())
    return directory


def validate_state_dict(config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> PoseModel:
    """Build ``config``'s model and check ``tensors`` fit it exactly; returns the untrained model.

    Raises :class:`InvalidWeightsError` naming the first problems: unknown architecture,
    missing or unexpected tensors, wrong shapes, non-float dtypes, NaN or infinite values.
    """
    # Checked against a skeleton on the meta device (shapes, no memory): a config naming a huge
    # timm backbone costs nothing until its weights are known to fit.
    with torch.device("meta"):
        expected = build_model(config).state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    problems, broken = [], []
    if missing:
        problems.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    for key in sorted(set(expected) & set(tensors)):
        tensor, reference = tensors[key], expected[key]
        if tuple(tensor.shape) != tuple(reference.shape):
            problems.append(
                f"{key}: shape {tuple(tensor.shape)}, architecture needs {tuple(reference.shape)}"
            )
        elif reference.is_floating_point() and not tensor.is_floating_point():
            problems.append(f"{key}: dtype {tensor.dtype}, expected a float tensor")
        elif tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            broken.append(key)
    if broken:
        problems.append(
            f"{len(broken)} tensors hold NaN/inf values (e.g. {broken[0]}): the weights are broken "
            "and would only produce NaN angles"
        )
    if problems:
        raise InvalidWeightsError(f"{config.get('name', config['architecture'])}: " + "; ".join(problems[:6]))
    return build_model(config)


def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file with a size cap and a clear error for anything else."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InvalidWeightsError(f"{path.name}: only .safetensors weights are accepted (no pickle files)")
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise InvalidWeightsError(f"{path.name}: {size} bytes is over the {MAX_WEIGHTS_BYTES}-byte cap")
    try:
        return load_safetensors_bytes(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise InvalidWeightsError(f"{path.name}: corrupt or truncated safetensors file ({error})") from error


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidWeightsError(f"{path}: unreadable config.json ({error})") from error
    if not isinstance(config, dict):
        raise InvalidWeightsError(f"{path}: config.json must hold a JSON object")
    return config


def load_directory(directory: str | os.PathLike, name: str | None = None) -> PoseModel:
    """Load a ``config.json`` + ``model.safetensors`` directory, validated, in eval mode.

    A training run's folder (``python -m fsanet train --out DIR``) stands for its latest model, ``DIR/model``.
    """
    directory = Path(directory)
    if not (directory / CONFIG_NAME).exists() and (directory / TRAINING_MODEL_DIR / CONFIG_NAME).is_file():
        directory = directory / TRAINING_MODEL_DIR
    for filename in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / filename).is_file():
            raise InvalidWeightsError(f"{directory}: no {filename}")
    config = load_config_file(directory / CONFIG_NAME)
    if name:
        config["name"] = name
    tensors = load_weights_file(directory / WEIGHTS_NAME)
    model = validate_state_dict(config, tensors)
    model.load_state_dict(tensors)
    return model.eval()


def from_pretrained(name_or_path: str | os.PathLike, revision: str | None = None) -> PoseModel:
    """A model from a local directory or a Hub repo id (``huggingface_hub`` conventions)."""
    path = Path(name_or_path)
    if path.is_dir():
        return load_directory(path)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id = str(name_or_path)
    try:
        local = snapshot_download(repo_id, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME])
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
        raise WeightsUnavailableError(
            f"could not fetch {repo_id!r} from the Hugging Face Hub ({type(error).__name__}); "
            "give a local directory, or allow Hub access (HF_HUB_OFFLINE unset, HF_ENDPOINT reachable)"
        ) from error
    return load_directory(local, name=repo_id if revision is None else f"{repo_id}@{revision}")


def push_to_hub(
    model: PoseModel,
    repo_id: str,
    private: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
) -> str:
    """Upload ``config.json`` + ``model.safetensors`` to ``repo_id``; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        save_pretrained(model, directory)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=directory, commit_message=commit_message or f"Upload {model.name}"
        )
    return str(info)


class HubMixin:
    """``save_pretrained`` / ``push_to_hub`` / ``from_pretrained`` as methods, as Hub models have."""

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        return save_pretrained(self, directory)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        return push_to_hub(self, repo_id, **kwargs)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> PoseModel:
        return from_pretrained(name_or_path, **kwargs)
