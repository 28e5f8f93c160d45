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
from fsanet.data.recipes import CropProtocol, finish_face, recipe_of

from .config import BENCHMARKS, CODE_VERSION, get_benchmark
from .data import BenchmarkData, DatasetUnavailableError, iter_batches, load_benchmark_data
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
from .store import ResultKey, ResultsStore

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
            data = load_benchmark_data(spec.source(root), spec.revision())
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


def resolve_model(model: str | fsanet.PoseModel, revision: str | None = None) -> tuple[str, fsanet.PoseModel]:
    """``(display name, model in eval mode)`` from a registry name, local dir, Hub repo id or module."""
    if isinstance(model, torch.nn.Module):
        return model.name, model.eval()
    loaded = fsanet.load_model(str(model), revision=revision)
    if Path(str(model)).is_dir():
        return loaded.config.get("name") or Path(str(model)).resolve().name, loaded.eval()
    return (f"{model}@{revision}" if revision else str(model)), loaded.eval()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.inference_mode()
def predict(model: torch.nn.Module, faces: np.ndarray, device: torch.device) -> np.ndarray:
    """RGB crops ``(N, S, S, 3)`` in [0, 255] -> float64 ``(N, 3)`` [yaw, pitch, roll]."""
    batch = torch.from_numpy(np.ascontiguousarray(faces)).to(device).permute(0, 3, 1, 2).float()
    return model(batch).double().cpu().numpy()


def evaluate(
    model: str | fsanet.PoseModel,
    benchmark: str | Path,
    store: ResultsStore | None = None,
    force: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    revision: str | None = None,
    robustness: bool = True,
    progress: bool = True,
    data_root: str | Path | None = None,
) -> Evaluation:
    """Score ``model`` on ``benchmark`` and store it; a no-op returning the stored result unless ``force``.

    ``data_root``: the board whose benchmark data is used (default the store's root; a worker's evaluation
    stores into a staging folder but reads the board's data).
    """
    if batch_size < 1:  # datasets' iter(batch_size=0) never ends
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    store = store or ResultsStore()
    name, data, filter_99 = resolve_benchmark(benchmark, store.root if data_root is None else data_root)
    model_name, module = resolve_model(model, revision)
    key = ResultKey(model_name, fsanet.weights_sha256(module), name, data.revision, CODE_VERSION)
    stored = None if force else store.get(key)
    if stored is not None:
        return Evaluation(key, stored, store.paths(key)[0], cached=True)

    device = torch.device(device) if device is not None else default_device()
    # Deterministic kernels; TF32 would shift angles by ~1e-3 degrees on Ampere+ GPUs.
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    info = model_info(module.to(device), model_name)
    recipe, protocol = recipe_of(module.config), crop_protocol(name, data)
    module = fsanet.optimize_for_inference(module.to(device).eval())  # BN folded, frozen: same angles, faster

    ids, faces_chunks, labels_chunks, preds = [], [], [], []
    bar = tqdm(total=len(data.dataset), desc=f"{model_name} on {name}", unit="crop", disable=not progress)
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
        raise fsanet.InvalidWeightsError(f"{model_name} produced NaN/inf angles on {name}")

    scores = summarize(ids, pred, labels, filter_99)
    keep = keep_mask(labels) if filter_99 else np.ones(len(labels), bool)
    if robustness:
        faces = np.concatenate(faces_chunks)[keep]
        scores["robustness"] = robustness_sweep(module, faces, labels[keep], device, batch_size)
    record = {
        "config": {
            "model_name": model_name,
            "model_sha": key.weights_sha256,
            "architecture": module.config.get("architecture", ""),
            **info,
            "benchmark": name,
            "protocol": BENCHMARKS[name].protocol if name in BENCHMARKS else data.meta.get("protocol", ""),
            "dataset_source": data.source,
            "dataset_revision": data.revision,
            "code_version": CODE_VERSION,
            "filter_99": filter_99,
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
