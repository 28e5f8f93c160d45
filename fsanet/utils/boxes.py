"""Greedy non-maximum suppression on NumPy boxes ``[x1, y1, x2, y2]``, one implementation for the
MTCNN cascade and the torchvision ``nms`` fallback."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np


def nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, overlap: Literal["iou", "min"] = "iou"
) -> np.ndarray:
    """Indices of the kept boxes, best score first, ties in input order.

    A box is dropped when its overlap with a kept, better box exceeds ``threshold``: intersection
    over union (torchvision's rule), or over the smaller area (``"min"``, MTCNN's last stage).
    Zero-area boxes suppress their exact duplicates, where torchvision would keep them.
    """
    if len(boxes) == 0:
        return np.empty(0, np.int64)
    boxes = np.asarray(boxes, np.float64)[:, :4]
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    if overlap == "iou":
        # OpenCV's C++ loop, 5x faster than NumPy on MTCNN's hundreds of candidates. It reads
        # (x, y, w, h) and drops scores <= 0, so it is given the ranks instead of the scores.
        ranks = np.empty(len(order), np.float32)
        ranks[order] = np.arange(len(order), 0, -1)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        return np.asarray(cv2.dnn.NMSBoxes(xywh, ranks, 0.0, threshold), np.int64).reshape(-1)
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        width = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        height = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            suppressed = width * height / np.minimum(areas[i], areas[rest]) > threshold
        order = rest[~suppressed]
    return np.array(keep, np.int64)
