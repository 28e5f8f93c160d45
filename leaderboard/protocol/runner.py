"""Score one model on one benchmark's data, deterministically: a typed row and predictions, nothing stored.

The protocol is the authors' test pipeline: each model's own crop of the stored protocol box (its recipe,
:mod:`fsanet.data.recipes`: FSA-Net's is the authors' crop of that benchmark, 64x64), RGB, fed raw in
[0, 255] with no min-max step, batched; the official +-99 degree filter where the benchmark uses it.
Crops reach the model in chunks whose pixels stay within :data:`CHUNK_PIXELS`, so a model of a large input
costs the evaluation's memory budget what a small one does (:func:`chunk_size`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

import fsanet
from fsanet.data.recipes import CropProtocol, finish_face
from fsanet.models.base import PoseModel
from fsanet.models.registry import ModelIdentity, recipe_of

from ..storage.rows import MeasuredRow
from .benchmarks import BENCHMARKS, CODE_VERSION
from .data import BenchmarkData, iter_batches
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

DEFAULT_BATCH_SIZE = 256
# At most this many input pixels per forward call: 16 crops of 64x64 (the ONNX engine's own chunk), one crop
# of 224x224 or 448x448. A model's activations grow with its input's pixels; this keeps them bounded.
CHUNK_PIXELS = 16 * 64 * 64


@dataclass(frozen=True)
class Candidate:
    """A model to score: its display name, the namespace its rows go to, the module, and its identity
    (computed once, carried with the module and its engine)."""

    name: str
    namespace: str
    module: PoseModel
    identity: ModelIdentity


@dataclass(frozen=True)
class Scored:
    """What one scoring produced: the row, and its per-sample predictions (``sample_id``, ``kept``, the true
    and predicted angles, their errors)."""

    row: MeasuredRow
    predictions: pd.DataFrame


def crop_protocol(name: str, data: BenchmarkData) -> CropProtocol:
    """The authors' crop of a benchmark (margin, slice end; never min-max), from its data or its config."""
    spec = BENCHMARKS.get(name)
    margin = data.meta.get("margin", spec.margin if spec else CropProtocol.margin)
    crop_end = data.meta.get("crop_end", spec.crop_end if spec else "exclusive")
    return CropProtocol(margin=float(margin), crop_end=str(crop_end), minmax=False)


def input_side(model: PoseModel) -> int:
    """The largest side the model's forward works at: its input size, or its recipe's crop when it resamples
    any size itself."""
    side = int(recipe_of(model.config)["size"])
    return (
        max(side, int(model.input_size)) if getattr(model, "resizes_input", False) else int(model.input_size)
    )


def chunk_size(model: PoseModel) -> int:
    """Crops per forward call for ``model``: within :data:`CHUNK_PIXELS`, at least one."""
    return max(1, CHUNK_PIXELS // input_side(model) ** 2)


@torch.inference_mode()
def predict(model: torch.nn.Module, faces: np.ndarray, device: torch.device, chunk: int = 16) -> np.ndarray:
    """RGB crops ``(N, S, S, 3)`` in [0, 255] -> float64 ``(N, 3)`` [yaw, pitch, roll], ``chunk`` a call."""
    out = []
    for start in range(0, len(faces), chunk):
        part = np.ascontiguousarray(faces[start : start + chunk])
        batch = torch.from_numpy(part).to(device).permute(0, 3, 1, 2).float()
        out.append(model(batch).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 3))


def score(
    candidate: Candidate,
    benchmark: str,
    data: BenchmarkData,
    filter_99: bool,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: torch.device | None = None,
    robustness: bool = True,
    progress: bool = True,
    request_id: str | None = None,
) -> Scored:
    """Score ``candidate`` on ``data`` (the benchmark ``benchmark``): its row, keyed by the candidate's
    identity and the data's revision, and its predictions. Nothing is stored."""
    if batch_size < 1:  # datasets' iter(batch_size=0) never ends
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = device or torch.device("cpu")
    # Deterministic kernels; TF32 would shift angles by ~1e-3 degrees on Ampere+ GPUs.
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    module = candidate.module.to(device).eval()
    info = model_info(module, candidate.name if candidate.namespace == "official" else "")
    recipe, protocol, chunk = recipe_of(module.config), crop_protocol(benchmark, data), chunk_size(module)
    engine = fsanet.optimize_for_inference(module, chunk=chunk)  # BN folded, frozen: same angles, faster

    ids, faces_chunks, labels_chunks, preds = [], [], [], []
    bar = tqdm(
        total=len(data.dataset), desc=f"{candidate.name} on {benchmark}", unit="crop", disable=not progress
    )
    start = time.perf_counter()
    for batch_ids, faces, labels in iter_batches(data.dataset, batch_size, recipe, protocol):
        finished = np.stack([finish_face(f, recipe, protocol) for f in faces])
        preds.append(predict(engine, finished, device, chunk))
        ids += batch_ids
        labels_chunks.append(labels)
        if robustness:
            faces_chunks.append(faces)
        bar.update(len(batch_ids))
    seconds = time.perf_counter() - start
    bar.close()
    pred, labels = np.concatenate(preds), np.concatenate(labels_chunks)
    if not np.isfinite(pred).all():
        raise fsanet.InvalidWeightsError(f"{candidate.name} produced NaN/inf angles on {benchmark}")

    scores = summarize(ids, pred, labels, filter_99)
    keep = keep_mask(labels) if filter_99 else np.ones(len(labels), bool)
    if robustness:
        kept_faces = np.concatenate(faces_chunks)[keep]
        scores["robustness"] = robustness_sweep(engine, kept_faces, labels[keep], device, batch_size, chunk)
    row = MeasuredRow.model_validate(
        {
            "model_name": candidate.name,
            "namespace": candidate.namespace,
            "weights_identity": candidate.identity.weights,
            "config_identity": candidate.identity.config,
            **info,
            "benchmark": benchmark,
            "protocol": BENCHMARKS[benchmark].protocol
            if benchmark in BENCHMARKS
            else data.meta.get("protocol"),
            "dataset_source": data.source,
            "dataset_revision": data.revision,
            "code_version": CODE_VERSION,
            "filter_99": filter_99,
            "request_id": request_id,
            **scores,
            "run": {
                "seconds": seconds,
                "crops_per_s": len(ids) / seconds if seconds > 0 else None,
                "device": str(device),
                "batch_size": batch_size,
                "torch": torch.__version__,
            },
        }
    )
    return Scored(row, predictions_frame(ids, pred, labels, keep))


def predictions_frame(ids: list[str], pred: np.ndarray, labels: np.ndarray, keep: np.ndarray) -> pd.DataFrame:
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
    chunk: int = 16,
    angles: tuple[float, ...] = ROBUSTNESS_ANGLES,
) -> list[dict[str, Any]]:
    """MAE and geodesic error after each flip x in-plane rotation, against exactly transformed labels."""
    out = []
    for flip in (False, True):
        for angle in angles:
            target = transform_labels(labels, angle, flip)
            pred = np.concatenate(
                [
                    predict(model, transform_faces(faces[i : i + batch_size], angle, flip), device, chunk)
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
