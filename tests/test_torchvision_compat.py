"""The CPU ``nms`` fallback that lets torchvision (hence timm and facenet-pytorch) import on CPU torch."""

from __future__ import annotations

import numpy as np
import torch

from fsanet.utils.torchvision_compat import ensure_torchvision, nms_reference

from .test_boxes import greedy_nms


def test_nms_matches_the_greedy_definition():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 100, (300, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, (300, 2))], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    for threshold in (0.3, 0.5, 0.7):
        ours = nms_reference(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).tolist()
        assert ours == greedy_nms(boxes.astype(np.float64), scores, threshold)
    assert nms_reference(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0


def test_torchvision_imports_and_its_nms_works():
    torchvision = ensure_torchvision()
    assert ensure_torchvision() is torchvision  # idempotent
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert torchvision.ops.nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert torchvision.ops.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1, 2]
    from facenet_pytorch import MTCNN  # noqa: F401  (imports torchvision.ops at import time)
