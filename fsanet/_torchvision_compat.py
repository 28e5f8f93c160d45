"""Make ``import torchvision`` work with the CPU torch wheel this project pins.

The only torchvision 0.28.0 on the package registry is a CUDA build. With the CPU torch
its native library fails to load, and ``import torchvision`` then raises
``operator torchvision::nms does not exist`` because ``torchvision._meta_registrations``
registers a fake kernel for that op unconditionally. timm and facenet-pytorch import
torchvision, so both break.

:func:`ensure_torchvision` imports torchvision normally. Only when that fails with exactly
this error does it define the ``torchvision::nms`` / ``torchvision::qnms`` schemas through
``torch.library`` with a pure-torch CPU ``nms``, imports again and tells torchvision's
``_has_ops`` check that ops are present (the other ops then fail with "does not exist").
Where torchvision loads normally (a matching build, a GPU machine) nothing is registered.
Ops other than ``nms``
(``roi_align``, ``deform_conv2d``, ``torchvision.io``) stay unavailable on such installs;
this project decodes images with Pillow/OpenCV and never uses them.
"""

from __future__ import annotations

import sys

import torch

_MISSING_OP_MESSAGE = "torchvision::nms does not exist"
_library: torch.library.Library | None = None  # kept alive: dropping it unregisters the ops


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression with torchvision's semantics (indices by score, descending)."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    boxes = boxes.float()
    order = scores.argsort(descending=True)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas - inter)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def _register_fallback_ops() -> None:
    global _library
    _library = torch.library.Library("torchvision", "DEF")
    _library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _library.impl("nms", nms_reference, "CPU")


def ensure_torchvision():
    """Import and return torchvision, installing the CPU ``nms`` fallback only if needed."""
    try:
        import torchvision
    except RuntimeError as error:
        if _MISSING_OP_MESSAGE not in str(error):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        if _library is None:
            _register_fallback_ops()
        import torchvision

        # torchvision.ops.nms asks extension._has_ops() before dispatching; nms now exists.
        torchvision.extension._has_ops = lambda: True
    return torchvision
