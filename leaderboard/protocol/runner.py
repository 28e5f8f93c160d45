"""Evaluate one model on one benchmark, deterministically, and store the result.

The protocol is the authors' test pipeline: each model's own crop of the stored protocol box (its recipe,
:mod:`fsanet.data.recipes`: FSA-Net's is the authors' crop of that benchmark, 64x64), RGB, fed raw in
[0, 255] with no min-max step, batched; the official +-99 degree filter where the benchmark uses it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

import fsanet
from fsanet.data.recipes import CropProtocol, finish_face
from fsanet.errors import FSANetError
from fsanet.models.base import PoseModel
from fsanet.models.registry import load_model, model_identity, parse_spec, recipe_of
from fsanet.utils import settings

from ..service.store import ResultKey, ResultsStore, key_of
from ..submission.names import name_key, official_names
from .benchmarks import BENCHMARKS, CODE_VERSION, get_benchmark
from .data import BenchmarkData, DatasetUnavailableError, iter_batches, load_benchmark, load_benchmark_data
from .metrics import (
    AXES,
    ROBUSTNESS_ANGLES,
    geodesic_errors,
    keep_mask,
    summarize,
    transform_faces,
    transform_labels,
)
from .model_info import model_info

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 256


@dataclass
class Evaluation:
    key: ResultKey
    record: dict[str, Any]
    path: Path
    cached: bool  # True when an identical result was already stored and nothing ran


def resolve_benchmark(
    benchmark: str | Path, root: str | Path | None = None
) -> tuple[str, BenchmarkData, bool]:
    """``(name, data, filter_99)`` for a registered benchmark name (its data located for the board at
    ``root``) or a dataset directory / Hub repo id."""
    if str(benchmark) in BENCHMARKS:
        spec = get_benchmark(str(benchmark))
        try:
            data = load_benchmark(spec.name, root)
        except DatasetUnavailableError as error:
            raise DatasetUnavailableError(
                f"no {spec.name} data: {error} (write it with `python -m leaderboard prepare ... --out DIR`, "
                f"or set {spec.env_var})"
            ) from None
        return spec.name, data, spec.filter_99
    data = load_benchmark_data(benchmark)
    name = data.meta.get("benchmark") or Path(str(benchmark)).name
    spec = BENCHMARKS.get(name)
    return name, data, spec.filter_99 if spec else True


def crop_protocol(name: str, data: BenchmarkData) -> CropProtocol:
    """The authors' crop of a benchmark (margin, slice end; never min-max), from its data or its config."""
    spec = BENCHMARKS.get(name)
    margin = data.meta.get("margin", spec.margin if spec else CropProtocol.margin)
    crop_end = data.meta.get("crop_end", spec.crop_end if spec else "exclusive")
    return CropProtocol(margin=float(margin), crop_end=str(crop_end), minmax=False)


@dataclass(frozen=True)
class Candidate:
    """A model to score: its display name, the namespace its rows go to, and the module."""

    name: str
    namespace: str
    module: PoseModel


def resolve_model(model: str | Path | PoseModel, revision: str | None = None) -> Candidate:
    """A registry name (an official row), or a local folder, Hub repo or module (a community row).

    Only the registry's own names reach the official namespace: a module handed in, whatever its name, is
    scored as a community model.
    """
    if isinstance(model, torch.nn.Module):
        return Candidate(model.name, "community", model.eval())
    spec = parse_spec(model, revision)
    module = load_model(model, revision).eval()
    if spec.kind == "registry":
        return Candidate(spec.value, "official", module)
    if spec.kind == "local":  # its config's name, unless that is the registry's (a training run's often is)
        name = str(module.config.get("name") or "")
        return Candidate(name if name and not _imitates(name) else str(model), "community", module)
    return Candidate(f"{spec.value}@{spec.revision}" if spec.revision else spec.value, "community", module)


def _imitates(name: str) -> str | None:
    """The registry name ``name`` is, or looks like (None when it is its own)."""
    return official_names().get(name_key(name))


@torch.inference_mode()
def predict(model: torch.nn.Module, faces: np.ndarray, device: torch.device) -> np.ndarray:
    """RGB crops ``(N, S, S, 3)`` in [0, 255] -> float64 ``(N, 3)`` [yaw, pitch, roll]."""
    batch = torch.from_numpy(np.ascontiguousarray(faces)).to(device).permute(0, 3, 1, 2).float()
    return model(batch).double().cpu().numpy()


def evaluate(
    model: str | Path | PoseModel,
    benchmark: str | Path,
    store: ResultsStore | None = None,
    force: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    revision: str | None = None,
    robustness: bool = True,
    progress: bool = True,
    data_root: str | Path | None = None,
    request_id: str | None = None,
) -> Evaluation:
    """Score ``model`` on ``benchmark`` and store it; a no-op returning the stored row unless ``force``.

    The row is keyed by the model's identity (:func:`fsanet.model_identity`), so the same weights and config
    under any name are answered with the row already stored, in whichever namespace it is (a community
    model is never stored beside an official row of the same identity, even with ``force``).
    ``data_root``: the board whose benchmark data is used (default the store's root; a worker's evaluation
    stores into a staging folder but reads the board's data). ``request_id``: the submission it scores.
    """
    if batch_size < 1:  # datasets' iter(batch_size=0) never ends
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    store = store or ResultsStore()
    name, data, filter_99 = resolve_benchmark(benchmark, store.root if data_root is None else data_root)
    candidate = resolve_model(model, revision)
    imitated = _imitates(candidate.name) if candidate.namespace == "community" else None
    if imitated:
        raise FSANetError(
            f"{candidate.name!r} looks like the official model {imitated!r}: a model that is not the "
            "registry's needs a name of its own (its folder's, or \"name\" in its config.json)"
        )
    module = candidate.module
    key = ResultKey(candidate.namespace, model_identity(module), name, data.revision, CODE_VERSION)
    stored = store.get(key)
    if stored is not None and (not force or key_of(stored).namespace != key.namespace):
        stored_key = key_of(stored)
        return Evaluation(stored_key, stored, store.paths(stored_key)[0], cached=True)

    device = settings.device(device)
    # Deterministic kernels; TF32 would shift angles by ~1e-3 degrees on Ampere+ GPUs.
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    info = model_info(module.to(device), candidate.name if key.namespace == "official" else "")
    recipe, protocol = recipe_of(module.config), crop_protocol(name, data)
    module = fsanet.optimize_for_inference(module.to(device).eval())  # BN folded, frozen: same angles, faster

    ids, faces_chunks, labels_chunks, preds = [], [], [], []
    bar = tqdm(total=len(data.dataset), desc=f"{candidate.name} on {name}", unit="crop", disable=not progress)
    start = time.perf_counter()
    for batch_ids, faces, labels in iter_batches(data.dataset, batch_size, recipe, protocol):
        preds.append(predict(module, np.stack([finish_face(f, recipe, protocol) for f in faces]), device))
        ids += batch_ids
        labels_chunks.append(labels)
        if robustness:
            faces_chunks.append(faces)
        bar.update(len(batch_ids))
    seconds = time.perf_counter() - start
    bar.close()
    pred, labels = np.concatenate(preds), np.concatenate(labels_chunks)
    if not np.isfinite(pred).all():
        raise fsanet.InvalidWeightsError(f"{candidate.name} produced NaN/inf angles on {name}")

    scores = summarize(ids, pred, labels, filter_99)
    keep = keep_mask(labels) if filter_99 else np.ones(len(labels), bool)
    if robustness:
        faces = np.concatenate(faces_chunks)[keep]
        scores["robustness"] = robustness_sweep(module, faces, labels[keep], device, batch_size)
    record = {
        "config": {
            "model_name": candidate.name,
            "namespace": key.namespace,
            "weights_identity": key.identity.weights,
            "config_identity": key.identity.config,
            **info,
            "benchmark": name,
            "protocol": BENCHMARKS[name].protocol if name in BENCHMARKS else data.meta.get("protocol", ""),
            "dataset_source": data.source,
            "dataset_revision": data.revision,
            "code_version": CODE_VERSION,
            "filter_99": filter_99,
            **({"request_id": request_id} if request_id else {}),
        },
        "results": {name: scores},
        "run": {
            "seconds": seconds,
            "crops_per_s": len(ids) / seconds if seconds > 0 else None,
            "device": str(device),
            "batch_size": batch_size,
            "torch": torch.__version__,
        },
    }
    path = store.write(key, record, _predictions_frame(ids, pred, labels, keep))
    return Evaluation(key, record, path, cached=False)


def _predictions_frame(
    ids: list[str], pred: np.ndarray, labels: np.ndarray, keep: np.ndarray
) -> pd.DataFrame:
    frame = pd.DataFrame({"sample_id": ids, "kept": keep})
    for i, axis in enumerate(AXES):
        frame[f"true_{axis}"] = labels[:, i]
        frame[f"pred_{axis}"] = pred[:, i]
        frame[f"abs_err_{axis}"] = np.abs(pred[:, i] - labels[:, i])
    frame["mae"] = np.abs(pred - labels).mean(axis=1)
    frame["geodesic"] = geodesic_errors(pred, labels)
    return frame


def robustness_sweep(
    model: torch.nn.Module,
    faces: np.ndarray,
    labels: np.ndarray,
    device: torch.device,
    batch_size: int = DEFAULT_BATCH_SIZE,
    angles: tuple[float, ...] = ROBUSTNESS_ANGLES,
) -> list[dict[str, Any]]:
    """MAE and geodesic error after each flip x in-plane rotation, against exactly transformed labels."""
    out = []
    for flip in (False, True):
        for angle in angles:
            target = transform_labels(labels, angle, flip)
            pred = np.concatenate(
                [
                    predict(model, transform_faces(faces[i : i + batch_size], angle, flip), device)
                    for i in range(0, len(faces), batch_size)
                ]
            )
            out.append(
                {
                    "angle": angle,
                    "flip": flip,
                    "mae": float(np.abs(pred - target).mean()),
                    "geodesic_mean": float(geodesic_errors(pred, target).mean()),
                }
            )
    return out
