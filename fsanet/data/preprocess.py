"""Face-crop preprocessing exactly as the official FSA-Net demo does it.

Images are RGB ``uint8`` arrays of shape ``(H, W, 3)``. The steps, from
``demo/demo_FSANET*.py``: enlarge the detector box ``(x, y, w, h)`` by ``margin`` on every
side (``int()`` truncation, clipped to the image, **inclusive** end), ``cv2.resize`` to
64x64 with ``INTER_LINEAR``, then a per-image min-max stretch to [0, 255]
(``cv2.normalize(..., NORM_MINMAX)``: one global min and max over all values).

The training/test databases used an exclusive crop end and no min-max step; both are
options here so the leaderboard importers can reproduce that recipe with the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

DEMO_MARGIN = 0.6
INPUT_SIZE = 64


def expand_box(
    box_xywh: Sequence[float],
    image_size: tuple[int, int],
    margin: float = DEMO_MARGIN,
) -> tuple[int, int, int, int]:
    """Enlarge ``(x, y, w, h)`` by ``margin`` and clip it, as the demo does.

    ``image_size`` is ``(width, height)``. Returns ``(x1, y1, x2, y2)`` with **inclusive**
    ends: the crop is ``image[y1:y2 + 1, x1:x2 + 1]``.
    """
    x, y, w, h = (float(v) for v in box_xywh)
    width, height = image_size
    x1 = max(int(x - margin * w), 0)
    y1 = max(int(y - margin * h), 0)
    x2 = min(int(x + w + margin * w), width - 1)
    y2 = min(int(y + h + margin * h), height - 1)
    return x1, y1, x2, y2


def xyxy_to_xywh(box_xyxy: Sequence[float]) -> tuple[float, float, float, float]:
    """``[x1, y1, x2, y2]`` (detector convention) to the demo's ``(x, y, w, h)``."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    return x1, y1, x2 - x1, y2 - y1


def crop_resize(
    image: np.ndarray,
    crop_xyxy: Sequence[int],
    size: int = INPUT_SIZE,
    inclusive: bool = True,
) -> np.ndarray:
    """Cut ``crop_xyxy`` out of ``image`` and resize it to ``size``x``size`` (INTER_LINEAR, uint8)."""
    x1, y1, x2, y2 = (int(v) for v in crop_xyxy)
    end = 1 if inclusive else 0
    crop = image[y1 : y2 + end, x1 : x2 + end]
    if crop.size == 0:
        raise ValueError(f"empty face crop {tuple(crop_xyxy)} in an image of shape {image.shape}")
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)


def minmax_normalize(face: np.ndarray) -> np.ndarray:
    """Per-image min-max stretch to [0, 255] over all values (``cv2.NORM_MINMAX``), float32."""
    face = face.astype(np.float64)
    low, high = face.min(), face.max()
    if high == low:  # a flat crop: cv2.normalize maps it to alpha (0)
        return np.zeros(face.shape, np.float32)
    return ((face - low) * (255.0 / (high - low))).astype(np.float32)


def preprocess_face(
    image: np.ndarray,
    box_xywh: Sequence[float],
    margin: float = DEMO_MARGIN,
    size: int = INPUT_SIZE,
    normalize: bool = True,
) -> np.ndarray:
    """One RGB image and one face box -> the model's float32 ``(size, size, 3)`` RGB input."""
    height, width = image.shape[:2]
    crop = crop_resize(image, expand_box(box_xywh, (width, height), margin), size)
    return minmax_normalize(crop) if normalize else crop.astype(np.float32)


def to_batch(faces: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
    """Stack HWC RGB faces into the model's float32 ``(N, 3, H, W)`` tensor."""
    array = np.ascontiguousarray(np.stack([np.asarray(f, np.float32) for f in faces]))
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
