"""Per-model pre-processing: each model's config declares how a face box becomes its input.

``config["preprocess"]`` (absent: the family's recipe, :func:`fsanet.models.catalogue.recipe_of`)::

    {"box": "margin" | <a rule a family registered>,   # margin: FSA-Net's rule
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
leaderboard. Other families' recipes may fix everything (their box rule registered here by their module).
:func:`crop_face` is the one function that applies a recipe; the mean/std of models that need it happen
inside the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fsanet.data.preprocess import DEMO_MARGIN, INPUT_SIZE, expand_box, minmax_normalize

INTERPOLATIONS = {
    "linear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "cubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
}
# Box rule name -> (box, frame size (width, height)) -> the slice (x1, y1, x2, y2) it cuts. "margin" is the
# rule of every FSA-Net recipe (it takes margin and slice end from the recipe or the protocol, so it lives in
# crop_region); families add theirs with register_box_rule when their module is imported.
BoxRule = Callable[[Sequence[float], tuple[int, int]], tuple[int, int, int, int]]
MARGIN_RULE = "margin"
BOX_RULES: dict[str, BoxRule] = {}
MAX_CROP_FRAMES = 4  # a rule's region past the frame is padded: never more than a few frames of black


def register_box_rule(name: str, rule: BoxRule) -> None:
    """Make ``{"box": name}`` a valid recipe box rule, cut by ``rule``."""
    BOX_RULES[name] = rule


class Recipe(BaseModel):
    """A model's pre-processing, as its config declares it (every field bounded; see the module doc)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    box: str = MARGIN_RULE
    margin: Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)] | None = None
    crop_end: Literal["inclusive", "exclusive"] | None = None
    square: bool = False
    size: Annotated[int, Field(ge=8, le=1024)] = INPUT_SIZE
    interpolation: Literal["linear", "area", "cubic", "nearest"] = "linear"
    color: Literal["rgb", "bgr"] = "rgb"
    minmax: bool | None = None

    @field_validator("box")
    @classmethod
    def _known_box_rule(cls, box: str) -> str:
        if box != MARGIN_RULE and box not in BOX_RULES:
            raise ValueError(f"box rule {box[:40]!r} is not one of {', '.join([MARGIN_RULE, *BOX_RULES])}")
        return box


@dataclass(frozen=True)
class CropProtocol:
    """What FSA-Net's recipe takes from the context: margin, slice end and min-max."""

    margin: float = DEMO_MARGIN
    crop_end: str = "inclusive"
    minmax: bool = True


DEMO = CropProtocol()  # the authors' demo: what photos, videos and the webcam get


def fsanet_recipe(size: int = INPUT_SIZE) -> dict[str, Any]:
    """The default recipe, FSA-Net's, at ``size`` (64 for the authors' models; a timm backbone's own size for
    its heads): margin, slice end and min-max come from the context."""
    return Recipe(size=int(size)).model_dump()


def validated_recipe(declared: Mapping[str, Any], size: int | None = None) -> dict[str, Any]:
    """A declared ``preprocess`` with every default filled in (``size``: the config's input size), or
    ValueError (a pydantic ``ValidationError``) naming the first bad field."""
    return Recipe.model_validate({"size": int(size or INPUT_SIZE), **declared}).model_dump()


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


def crop_region(
    box: Sequence[float],
    recipe: Mapping[str, Any],
    frame_size: tuple[int, int],
    protocol: CropProtocol = DEMO,
) -> tuple[int, int, int, int]:
    """The slice ``(x1, y1, x2, y2)`` (exclusive end) the recipe cuts for face ``box`` in a frame."""
    return _region(box, resolved_recipe(recipe, protocol), frame_size)


def _region(box: Sequence[float], recipe: Mapping[str, Any], frame_size: tuple[int, int]) -> tuple[int, ...]:
    """:func:`crop_region` of a recipe already resolved."""
    box = tuple(float(v) for v in box)
    if recipe.get("square"):
        box = _square(box)
    if recipe["box"] != MARGIN_RULE:
        return BOX_RULES[recipe["box"]](box, frame_size)
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
    the authors clipped it to their full photo, and the crop must then lie inside ``image``. Where a box rule
    cuts past the frame (the PIL-based crops of HopeNet and 6DRepNet), the part outside is black.
    """
    return _crop(image, box, resolved_recipe(recipe, protocol), origin, frame_size)


def _crop(
    image: np.ndarray,
    box: Sequence[float],
    recipe: Mapping[str, Any],
    origin: tuple[int, int] = (0, 0),
    frame_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """:func:`crop_face` with a recipe already resolved."""
    height, width = image.shape[:2]
    frame_size = frame_size or (width, height)
    region = _region(box, recipe, frame_size)
    # A family's box rule may reach past the frame, as PIL's crop does: that part is black, as PIL pads it.
    frame_width, frame_height = frame_size
    if (region[2] - region[0]) * (region[3] - region[1]) > MAX_CROP_FRAMES * frame_width * frame_height:
        raise ValueError(f"the crop {region} is larger than {MAX_CROP_FRAMES} frames")
    inside = (max(region[0], 0), max(region[1], 0), min(region[2], frame_width), min(region[3], frame_height))
    x1, x2, y1, y2 = (
        inside[0] - origin[0],
        inside[2] - origin[0],
        inside[1] - origin[1],
        inside[3] - origin[1],
    )
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise ValueError(f"the crop {(x1, y1, x2, y2)} reaches outside the stored {width}x{height} image")
    crop = image[y1:y2, x1:x2]
    if crop.size == 0:
        raise ValueError(f"empty face crop {(x1, y1, x2, y2)} in an image of shape {image.shape}")
    if inside != tuple(region):
        padded = np.zeros((region[3] - region[1], region[2] - region[0], *image.shape[2:]), image.dtype)
        top, left = inside[1] - region[1], inside[0] - region[0]
        padded[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
        crop = padded
    size = int(recipe["size"])
    face = cv2.resize(crop, (size, size), interpolation=INTERPOLATIONS[recipe["interpolation"]])
    return np.ascontiguousarray(face[..., ::-1]) if recipe["color"] == "bgr" else face


def finish_face(face: np.ndarray, recipe: Mapping[str, Any], protocol: CropProtocol = DEMO) -> np.ndarray:
    """A crop from :func:`crop_face` as the model's float32 input (the min-max stretch where it applies)."""
    return _finish(face, resolved_recipe(recipe, protocol))


def _finish(face: np.ndarray, recipe: Mapping[str, Any]) -> np.ndarray:
    return minmax_normalize(face) if recipe["minmax"] else face.astype(np.float32)


class FaceCrop:
    """A model's recipe resolved once for a context (:func:`resolved_recipe`): cuts the model's input batch
    for any number of faces of a frame, as :func:`crop_face` and :func:`finish_face` would one by one."""

    def __init__(self, recipe: Mapping[str, Any], protocol: CropProtocol = DEMO):
        self.recipe = resolved_recipe(recipe, protocol)
        self.size = int(self.recipe["size"])

    def batch(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
        """float32 ``(N, 3, size, size)`` model inputs (NCHW, RGB or the recipe's order) of ``boxes``
        (``x1, y1, x2, y2``) in the RGB ``image``."""
        inputs = np.empty((len(boxes), 3, self.size, self.size), np.float32)
        for index, box in enumerate(boxes):
            inputs[index] = _finish(_crop(image, box, self.recipe), self.recipe).transpose(2, 0, 1)
        return inputs
