"""Greedy non-maximum suppression against its definition, one pair at a time."""

from __future__ import annotations

import numpy as np
import pytest

from fsanet.utils.boxes import nms


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, overlap: str = "iou") -> list[int]:
    """The definition: best first, drop a box overlapping a kept one by more than ``threshold``."""

    def ratio(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
        return w * h / (area_a + area_b - w * h if overlap == "iou" else min(area_a, area_b))

    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(ratio(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(int(i))
    return keep


def random_boxes(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0, 100, (count, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, (count, 2))], axis=1)
    return boxes, rng.uniform(0, 1, count).round(2)  # rounded: many ties


@pytest.mark.parametrize("overlap", ["iou", "min"])
def test_nms_matches_the_greedy_definition_ties_included(overlap):
    for seed in range(20):
        boxes, scores = random_boxes(seed, 150)
        for threshold in (0.3, 0.5, 0.7):
            expected = greedy_nms(boxes, scores, threshold, overlap)
            assert nms(boxes, scores, threshold, overlap).tolist() == expected


def test_nms_takes_any_scores_and_no_boxes():
    boxes, scores = random_boxes(0, 50)
    shifted = nms(boxes, scores - 5.0, 0.5)  # negative scores: OpenCV would drop them, ranks do not
    assert shifted.tolist() == nms(boxes, scores, 0.5).tolist()
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)
