"""The AFLW2000 sample as a detector sees it: the photos, their horizontal mirror images and copies rotated
by +-20 degrees, each with its visible-landmark box moved along. Used by tests/test_detection.py and
bench/bench_detectors.py (recall of every detector on each copy)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import scipy.io
from PIL import Image

from .test_pipeline import AFLW, landmark_box, matched_box

ROTATION_DEG = 20.0
Copy = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]  # (image, pt2d) -> both moved


def _original(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return image, points


def _flipped(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    moved = points.copy()
    moved[0] = image.shape[1] - 1 - points[0]
    return np.ascontiguousarray(image[:, ::-1]), moved


def _rotated(degrees: float) -> Copy:
    def rotate(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = image.shape[:2]
        matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, 1.0)
        turned = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR)
        return turned, matrix @ np.vstack([points, np.ones(points.shape[1])])

    return rotate


COPIES: dict[str, Copy] = {
    "original": _original,
    "flipped": _flipped,
    f"rotated +{ROTATION_DEG:g}°": _rotated(ROTATION_DEG),
    f"rotated -{ROTATION_DEG:g}°": _rotated(-ROTATION_DEG),
}


def aflw_copy(name: str, folder: Path = AFLW) -> list[tuple[str, np.ndarray, tuple[float, ...]]]:
    """``(sample id, RGB image, visible-landmark box xywh)`` of every sample, moved by ``COPIES[name]``."""
    samples = []
    for jpg in sorted(folder.glob("*.jpg")):
        points = scipy.io.loadmat(jpg.with_suffix(".mat"))["pt2d"].astype(np.float64)
        hidden = ~((points[0] > 0) & (points[1] > 0))
        image, moved = COPIES[name](np.asarray(Image.open(jpg).convert("RGB")), points)
        moved[:, hidden] = -1  # still hidden after the move (landmark_box skips them)
        samples.append((jpg.stem, image, landmark_box(moved)))
    return samples


def found(detector, samples) -> list[str]:
    """Ids of the samples whose face ``detector`` finds (a box centred on the landmark box)."""
    return [sample for sample, image, box in samples if matched_box(detector.detect(image), box) is not None]
