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

from fsanet.utils.boxes import nms

_MISSING_OP_MESSAGE = "torchvision::nms does not exist"
_library: torch.library.Library | None = None  # kept alive: dropping it unregisters the ops


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """``torchvision::nms`` on CPU: greedy suppression, kept indices by score, descending."""
    keep = nms(boxes.detach().cpu().float().numpy(), scores.detach().cpu().float().numpy(), iou_threshold)
    return torch.as_tensor(keep, device=boxes.device)


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
