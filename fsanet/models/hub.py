"""``config.json`` + ``model.safetensors`` (+ a model card) on disk and on the Hugging Face Hub.

:class:`~fsanet.models.base.PoseModel` is a ``huggingface_hub.ModelHubMixin``: ``save_pretrained`` and
``push_to_hub`` come from the mixin and write, through :func:`write_model_files` and :func:`model_card`, the
two files every loader here reads plus a ``README.md`` model card. Loading goes through one validated path
(:func:`load_directory`: the config against its family's schema, every tensor against the architecture),
and every Hub download through :func:`download_snapshot`.

What is written is the config :func:`fsanet.models.published.published_config` gives (the caller passes
it): a registry model whose weights changed says ``derived_from`` instead of claiming the official name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save as save_safetensors_bytes

from fsanet.errors import InvalidWeightsError, UnknownModelError, WeightsUnavailableError
from fsanet.models.catalogue import family_of, recipe_of, split_name, validate_state_dict
from fsanet.models.weights import WEIGHTS_NAME, load_weights_file
from fsanet.utils.files import atomic_write

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

    from fsanet.models.base import PoseModel

CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
TRAINING_MODEL_DIR = "model"  # where `python -m fsanet train` saves the latest model of a run
MAX_CONFIG_BYTES = 64 * 1024
# Other installed packages may add sections to every model card (the leaderboard adds its scores): each
# entry point is a function ``(model) -> list of {"benchmark", "mae", ...}`` rows.
CARD_RESULTS_GROUP = "fsanet.model_card_results"


def weights_bytes(model: torch.nn.Module) -> bytes:
    """The model's ``model.safetensors`` content (deterministic for the same weights)."""
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    return save_safetensors_bytes(state)


def write_model_files(
    model: PoseModel, directory: str | os.PathLike, config: Mapping[str, Any] | None = None
) -> Path:
    """Write ``config.json`` (``config``, default the model's) and ``model.safetensors`` into ``directory``
    (each atomically)."""
    directory = Path(directory)
    config = model.config if config is None else config
    atomic_write(directory / WEIGHTS_NAME, weights_bytes(model))
    atomic_write(directory / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True).encode())
    return directory


def save_pretrained(model: PoseModel, directory: str | os.PathLike, **options: Any) -> Path:
    """``model.save_pretrained(directory)``: config, weights and model card; returns the directory."""
    model.save_pretrained(directory, **options)
    return Path(directory)


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise InvalidWeightsError(f"{path.name} is over {MAX_CONFIG_BYTES} bytes")
        config = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
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


def download_snapshot(repo_id: str, revision: str | None, patterns: Sequence[str]) -> Path:
    """The files of Hub model repo ``repo_id`` matching ``patterns``, in the local Hub cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(patterns)))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
        raise WeightsUnavailableError(
            f"could not fetch {repo_id!r} from the Hugging Face Hub ({type(error).__name__}); "
            "give a local directory, or allow Hub access (HF_HUB_OFFLINE unset, HF_ENDPOINT reachable)"
        ) from error


def download_model(repo_id: str, revision: str | None = None) -> PoseModel:
    """A model from a Hub repo (``config.json`` + ``model.safetensors`` at its root)."""
    local = download_snapshot(repo_id, revision, [CONFIG_NAME, WEIGHTS_NAME])
    return load_directory(local, name=repo_id if revision is None else f"{repo_id}@{revision}")


def push_to_hub(model: PoseModel, repo_id: str, **options: Any) -> str:
    """``model.push_to_hub(repo_id)``: config, weights and model card in one commit; the commit URL."""
    return str(model.push_to_hub(repo_id, **options))


# ------------------------------------------------------------------------------------------ model card
def card_results(model: PoseModel) -> list[Mapping[str, Any]]:
    """Scores other packages hold for this model (the leaderboard's rows with its identity)."""
    rows: list[Mapping[str, Any]] = []
    for entry_point in entry_points(group=CARD_RESULTS_GROUP):
        try:
            rows += entry_point.load()(model)
        except Exception:  # noqa: BLE001  (a card is written even when a results store is unreadable)
            continue
    return rows


def model_card(
    model: PoseModel, config: Mapping[str, Any], results: Sequence[Mapping[str, Any]] | None = None
) -> ModelCard:
    """The ``README.md`` of a saved or pushed model whose published config is ``config``
    (:func:`fsanet.models.published.published_config`): library, licence, tags, training data, its recipe,
    and the board's numbers where a results store has them (``results``, else :func:`card_results`)."""
    from huggingface_hub import ModelCard, ModelCardData

    fam = family_of(config)
    trained_on, licence = config.get("trained_on"), _licence(config)
    derived = config.get("derived_from")
    rows = list(results) if results is not None else card_results(model)
    data = ModelCardData(
        library_name="fsanet",
        license=licence or "other",
        tags=sorted({"pytorch", "head-pose-estimation", *fam.tags}),
    )
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {config.get('name') or fam.architecture}",
        "",
        f"A **{fam.method}** head-pose model (`{fam.architecture}`) saved with the `fsanet` library: "
        "yaw, pitch and roll in degrees of a face crop.",
        "",
        f"* Trained on: {trained_on or 'not stated'} ({config.get('protocol') or 'protocol not stated'})",
    ]
    if derived:
        origin = ", ".join(f"{key} {value}" for key, value in derived.items() if key != "name")
        lines.append(
            f"* Derived from: `{derived['name']}` ({origin}); its weights were changed since, so they are "
            "not that model's"
        )
    lines.append(f"* Licence: {licence or 'not stated'}")
    if fam.paper:
        lines.append(f"* Paper: {fam.paper}")
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "import fsanet",
        'model = fsanet.load_model("hf-hub:OWNER/NAME")  # or a local folder',
        "angles = model(crops)  # (N, 3) [yaw, pitch, roll]: RGB crops in [0, 255], the recipe below",
        "```",
        "",
        "## Pre-processing recipe",
        "",
        "```json",
        json.dumps(recipe_of(config), indent=2, sort_keys=True),
        "```",
    ]
    if rows:
        header = "| benchmark | MAE yaw | MAE pitch | MAE roll | MAE | n |"
        lines += ["", "## Leaderboard", "", header, "|---" * 6 + "|"]
        lines += [
            f"| {r['benchmark']} | {r['mae_yaw']:.2f} | {r['mae_pitch']:.2f} | {r['mae_roll']:.2f} | "
            f"{r['mae']:.2f} | {r['n']} |"
            for r in rows
        ]
    return ModelCard("\n".join(lines) + "\n")


def _licence(config: Mapping[str, Any]) -> str | None:
    """The licence of registry weights (``name.tag``) and of what is derived from them; a saved model of
    one's own states none."""
    name = config.get("name") or (config.get("derived_from") or {}).get("name", "")
    try:
        weights = split_name(str(name))[2]
    except UnknownModelError:
        return None
    return weights.licence if weights else None
