"""Per-model pre-processing: each model's config declares how a face box becomes its input.

``config["preprocess"]`` (absent: FSA-Net's recipe at the config's ``image_size``)::

    {"box": "margin" | "whenet",     # margin: FSA-Net's rule; whenet: WHENet's demo padding
     "margin": 0.6 | null,          # FSA rule: each side grows by margin * width/height; null: the protocol's
     "crop_end": "inclusive" | "exclusive" | null,   # FSA rule: slice end; null: the protocol's
     "square": false,               # true: the box becomes a square on its centre (side = max(w, h)) first
     "size": 64,                    # output side (never aspect-preserving: the crop is stretched)
     "interpolation": "linear" | "area" | "cubic" | "nearest",   # cv2.resize
     "color": "rgb" | "bgr",        # channel order the model takes
     "minmax": true | false | null} # per-image min-max stretch to [0, 255]; null: the protocol's

FSA-Net's authors cropped differently in their demo (margin 0.6, inclusive end, min-max) and in their test
databases (AFLW2000: margin 0.6 exclusive; BIWI: margin 0.4 inclusive; no min-max), so their recipe leaves
those to the :class:`CropProtocol` of the context: :data:`DEMO` for photos, the benchmark's for the
leaderboard. WHENet's recipe fixes everything. :func:`crop_face` is the one function that applies a recipe;
the ImageNet mean/std of models that need it happen inside the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from fsanet.data.preprocess import DEMO_MARGIN, INPUT_SIZE, expand_box, minmax_normalize

INTERPOLATIONS = {
    "linear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "cubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
}
BOX_RULES = ("margin", "whenet")
RECIPE_KEYS = ("box", "margin", "crop_end", "square", "size", "interpolation", "color", "minmax")


@dataclass(frozen=True)
class CropProtocol:
    """What FSA-Net's recipe takes from the context: margin, slice end and min-max."""

    margin: float = DEMO_MARGIN
    crop_end: str = "inclusive"
    minmax: bool = True


DEMO = CropProtocol()  # the authors' demo: what photos, videos and the webcam get


def fsanet_recipe(size: int = INPUT_SIZE) -> dict[str, Any]:
    """FSA-Net's recipe at ``size`` (64 for the authors' models; a timm backbone's own size for its heads)."""
    return {
        "box": "margin",
        "margin": None,
        "crop_end": None,
        "square": False,
        "size": int(size),
        "interpolation": "linear",
        "color": "rgb",
        "minmax": None,
    }


def recipe_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The model's recipe, validated; configs without one (every FSA-Net file) get FSA-Net's."""
    declared = config.get("preprocess")
    if declared is None:
        members = config.get("members") or []
        size = config.get("image_size") or (members[0].get("image_size") if members else None)
        return fsanet_recipe(size or INPUT_SIZE)
    recipe = fsanet_recipe(declared.get("size", config.get("image_size", INPUT_SIZE))) | dict(declared)
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise ValueError(f"unknown pre-processing keys {unknown} (known: {', '.join(RECIPE_KEYS)})")
    if recipe["box"] not in BOX_RULES:
        raise ValueError(f"pre-processing box rule {recipe['box']!r} is not one of {BOX_RULES}")
    if recipe["interpolation"] not in INTERPOLATIONS:
        raise ValueError(f"interpolation {recipe['interpolation']!r} is not one of {sorted(INTERPOLATIONS)}")
    if recipe["color"] not in ("rgb", "bgr") or recipe["crop_end"] not in (None, "inclusive", "exclusive"):
        raise ValueError(f"invalid colour order or crop end in {recipe}")
    if not 8 <= int(recipe["size"]) <= 1024:
        raise ValueError(f"input size {recipe['size']} is outside 8..1024")
    return recipe


def resolved_recipe(recipe: Mapping[str, Any], protocol: CropProtocol = DEMO) -> dict[str, Any]:
    """``recipe`` with what it leaves to the context (margin, slice end, min-max) taken from ``protocol``:
    the numbers :func:`crop_face` and :func:`finish_face` apply (and the Webcam tab receives as JSON)."""
    resolved = dict(recipe)
    if resolved.get("margin") is None:
        resolved["margin"] = protocol.margin
    resolved["crop_end"] = resolved.get("crop_end") or protocol.crop_end
    if resolved.get("minmax") is None:
        resolved["minmax"] = protocol.minmax
    return resolved


def _square(box: Sequence[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def whenet_box(box: Sequence[float], frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """WHENet demo's padding of ``(x1, y1, x2, y2)``, as a slice ``image[y1:y2, x1:x2]``.

    Sequential as in the demo: each updated coordinate feeds the next one's padding; each is clipped to the
    image (``frame_size`` = (width, height)) and truncated with ``int()`` at the end.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = frame_size
    y1 = max(0.0, y1 - abs(y1 - y2) / 10)
    y2 = min(float(height), y2 + abs(y1 - y2) / 10)
    x1 = max(0.0, x1 - abs(x1 - x2) / 5)
    x2 = min(float(width), x2 + abs(x1 - x2) / 5)
    return int(x1), int(y1), int(x2), int(y2)


def crop_region(
    box: Sequence[float],
    recipe: Mapping[str, Any],
    frame_size: tuple[int, int],
    protocol: CropProtocol = DEMO,
) -> tuple[int, int, int, int]:
    """The slice ``(x1, y1, x2, y2)`` (exclusive end) the recipe cuts for face ``box`` in a frame."""
    box = tuple(float(v) for v in box)
    recipe = resolved_recipe(recipe, protocol)
    if recipe.get("square"):
        box = _square(box)
    if recipe["box"] == "whenet":
        return whenet_box(box, frame_size)
    margin, crop_end = float(recipe["margin"]), recipe["crop_end"]
    x1, y1, x2, y2 = box
    # expand_box is the authors' own arithmetic (int truncation, inclusive end clipped to the image).
    left, top, right, bottom = expand_box((x1, y1, x2 - x1, y2 - y1), frame_size, margin)
    end = 1 if crop_end == "inclusive" else 0
    return left, top, right + end, bottom + end


def crop_face(
    image: np.ndarray,
    box: Sequence[float],
    recipe: Mapping[str, Any],
    protocol: CropProtocol = DEMO,
    origin: tuple[int, int] = (0, 0),
    frame_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """The recipe's ``uint8 (size, size, 3)`` crop of face ``box`` (``x1, y1, x2, y2`` in frame pixels).

    ``image`` is RGB; it may be a part of a larger frame (a benchmark's context crop) whose top-left corner
    sits at ``origin`` in a frame of ``frame_size`` = (width, height): the box is clipped to the frame, as
    the authors clipped it to their full photo, and the crop must then lie inside ``image``.
    """
    height, width = image.shape[:2]
    frame_size = frame_size or (width, height)
    x1, y1, x2, y2 = crop_region(box, recipe, frame_size, protocol)
    x1, x2, y1, y2 = x1 - origin[0], x2 - origin[0], y1 - origin[1], y2 - origin[1]
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise ValueError(f"the crop {(x1, y1, x2, y2)} reaches outside the stored {width}x{height} image")
    crop = image[y1:y2, x1:x2]
    if crop.size == 0:
        raise ValueError(f"empty face crop {(x1, y1, x2, y2)} in an image of shape {image.shape}")
    size = int(recipe["size"])
    face = cv2.resize(crop, (size, size), interpolation=INTERPOLATIONS[recipe["interpolation"]])
    return np.ascontiguousarray(face[..., ::-1]) if recipe["color"] == "bgr" else face


def finish_face(face: np.ndarray, recipe: Mapping[str, Any], protocol: CropProtocol = DEMO) -> np.ndarray:
    """A crop from :func:`crop_face` as the model's float32 input (the min-max stretch where it applies)."""
    return minmax_normalize(face) if resolved_recipe(recipe, protocol)["minmax"] else face.astype(np.float32)
