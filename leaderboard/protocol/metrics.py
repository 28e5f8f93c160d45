"""Scores: the papers' MAE with the official filter, and what no paper table shows.

Angles are ``(N, 3)`` arrays of [yaw, pitch, roll] in degrees. Rotation matrices use
``fsanet.data.geometry`` (``R = Rx(pitch) Ry(-yaw) Rz(roll)``, the AFLW2000/300W-LP label convention), so the
geodesic error and the exactly transformed labels of the robustness sweep share one convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from fsanet.data.geometry import euler_angles, geodesic_distance, rotation_matrix

from .benchmarks import ANGLE_LIMIT

AXES = ("yaw", "pitch", "roll")
YAW_BIN_EDGES = (0, 15, 30, 45, 60, 75, 90, ANGLE_LIMIT)
CURVE_THRESHOLDS = tuple(range(0, 31))  # degrees, for the cumulative error curve
N_WORST = 10


def keep_mask(labels: np.ndarray, limit: float = ANGLE_LIMIT) -> np.ndarray:
    """The official test filter: True where every |angle| <= ``limit``."""
    return np.all(np.abs(np.asarray(labels, np.float64)) <= limit, axis=1)


def geodesic_errors(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Angle (degrees) of the rotation taking the predicted head pose to the true one, per sample."""
    to_matrix = lambda a: rotation_matrix(a[:, 0], a[:, 1], a[:, 2])  # noqa: E731
    return geodesic_distance(
        to_matrix(np.asarray(pred, np.float64)), to_matrix(np.asarray(labels, np.float64))
    )


def mae_by_yaw_bin(abs_err: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
    """Mean of the three per-axis MAEs in bins of |true yaw| (empty bins report n = 0, mae None)."""
    yaw = np.abs(labels[:, 0])
    out = []
    for low, high in zip(YAW_BIN_EDGES[:-1], YAW_BIN_EDGES[1:], strict=True):
        last = high == YAW_BIN_EDGES[-1]
        inside = (yaw >= low) & ((yaw <= high) if last else (yaw < high))
        n = int(inside.sum())
        out.append({"bin": f"{low}-{high:g}", "n": n, "mae": float(abs_err[inside].mean()) if n else None})
    return out


def cumulative_curve(errors: np.ndarray, thresholds: Sequence[float] = CURVE_THRESHOLDS) -> list[list[float]]:
    """``[[t, fraction of samples with error <= t], ...]``: the cumulative error distribution."""
    errors = np.asarray(errors, np.float64)
    return [[float(t), float((errors <= t).mean()) if errors.size else 0.0] for t in thresholds]


def summarize(
    sample_ids: Sequence[str],
    pred: np.ndarray,
    labels: np.ndarray,
    filter_99: bool = True,
) -> dict[str, Any]:
    """All scores of one run. MAE, bins, curve and worst samples use the kept samples only."""
    pred, labels = np.asarray(pred, np.float64), np.asarray(labels, np.float64)
    if pred.shape != labels.shape or pred.ndim != 2 or pred.shape[1] != 3:
        raise ValueError(f"predictions {pred.shape} and labels {labels.shape} must both be (N, 3)")
    keep = keep_mask(labels) if filter_99 else np.ones(len(labels), bool)
    if not keep.any():
        raise ValueError("no sample is left after the angle filter: nothing to score")
    ids = np.asarray(sample_ids)[keep]
    p, t = pred[keep], labels[keep]
    abs_err = np.abs(p - t)
    mean_err = abs_err.mean(axis=1)
    geodesic = geodesic_errors(p, t)
    worst = np.argsort(-mean_err, kind="stable")[:N_WORST]
    summary: dict[str, Any] = {f"mae_{axis}": float(abs_err[:, i].mean()) for i, axis in enumerate(AXES)}
    summary |= {
        "mae": float(abs_err.mean()),
        "n": int(keep.sum()),
        "n_dropped": int((~keep).sum()),
        "geodesic_mean": float(geodesic.mean()),
        "geodesic_median": float(np.median(geodesic)),
        "mae_by_yaw_bin": mae_by_yaw_bin(mean_err, t),
        "cumulative_mae_curve": cumulative_curve(mean_err),
        "cumulative_geodesic_curve": cumulative_curve(geodesic),
        "worst_samples": [
            {
                "sample_id": str(ids[i]),
                "mae": float(mean_err[i]),
                "pred": p[i].tolist(),
                "true": t[i].tolist(),
            }
            for i in worst
        ],
    }
    return summary


# ---------------------------------------------------------------------------------- robustness sweep

ROBUSTNESS_ANGLES = (-30.0, -15.0, 0.0, 15.0, 30.0)
_FLIP = np.diag([-1.0, 1.0, 1.0])  # mirror x in camera coordinates


def transform_labels(labels: np.ndarray, angle: float, flip: bool) -> np.ndarray:
    """Labels of the images after :func:`transform_faces` (flip, then rotate ``angle`` degrees CCW).

    A horizontal flip conjugates the head rotation by the x mirror; an in-plane rotation of the image by
    ``angle`` (counter-clockwise on screen, y pointing down) is the camera rotation ``Rz(-angle)`` applied
    after the head's. Both are exact on the rotation; only the Euler read-out is unique for |yaw| < 90.
    """
    labels = np.asarray(labels, np.float64)
    matrices = rotation_matrix(labels[:, 0], labels[:, 1], labels[:, 2])
    if flip:
        matrices = _FLIP @ matrices @ _FLIP
    if angle:
        matrices = rotation_matrix(0.0, 0.0, -angle) @ matrices
    return euler_angles(matrices)


def transform_faces(faces: np.ndarray, angle: float, flip: bool) -> np.ndarray:
    """Flip left-right, then rotate each ``(N, H, W, 3)`` crop ``angle`` degrees CCW about its centre."""
    out = faces[:, :, ::-1] if flip else faces
    if not angle:
        return np.ascontiguousarray(out)
    height, width = faces.shape[1:3]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
    return np.stack([cv2.warpAffine(np.ascontiguousarray(f), matrix, (width, height)) for f in out])
