"""Draw poses on RGB images: axes (x red, y green, z blue), an optional cube, the box and a numbered label.

Axes are the columns of :func:`fsanet.data.geometry.rotation_matrix` projected orthographically, the
FSA-Net/Hopenet ``draw_axis``: the red x axis points to the image right at rest, green y
down, blue z along the viewing axis (it swings left as yaw grows, up as pitch grows).
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from fsanet.data.geometry import project_axes, rotation_matrix
from fsanet.pipeline.estimate import FacePose, PoseResult

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
AXIS_COLORS = (RED, GREEN, BLUE)
BOX_COLOR = (255, 200, 0)
LINE_PER_PIXELS = 400  # line thickness: one pixel per this many pixels of the image's longer side
AXIS_FRACTION = 0.5  # axis length: this fraction of the box's shorter side
LABEL_FACE_HEIGHT = 110.0  # label font scale 1 on a face this many pixels high...
LABEL_SCALES = (0.45, 3.0)  # ...within these bounds
# Cube corners in head coordinates: a square around the face, extruded along the z axis.
_CUBE = np.array([[x, y, z] for z in (0.0, 2.0) for x, y in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
_CUBE_EDGES = [(i, (i + 1) % 4) for i in range(4)] + [(i + 4, (i + 1) % 4 + 4) for i in range(4)]
_CUBE_EDGES += [(i, i + 4) for i in range(4)]


def _thickness(image: np.ndarray) -> int:
    return max(1, round(max(image.shape[:2]) / LINE_PER_PIXELS))


def draw_axis(
    image: np.ndarray, yaw: float, pitch: float, roll: float, center: tuple[float, float], size: float
) -> np.ndarray:
    """Draw the three head axes of length ``size`` from ``center`` on ``image`` (in place)."""
    tips = project_axes(yaw, pitch, roll, size)  # (3 axes, x/y)
    origin = np.asarray(center, np.float64)
    for tip, color in zip(tips, AXIS_COLORS, strict=True):
        end = origin + tip
        cv2.line(image, _point(origin), _point(end), color, _thickness(image), cv2.LINE_AA)
    return image


def draw_cube(
    image: np.ndarray, yaw: float, pitch: float, roll: float, center: tuple[float, float], size: float
) -> np.ndarray:
    """Draw a head-aligned cube of half-width ``size/2`` around ``center`` (in place)."""
    corners = np.asarray(center) + (size / 2) * (_CUBE @ rotation_matrix(yaw, pitch, roll).T)[:, :2]
    for i, j in _CUBE_EDGES:
        color = BLUE if i >= 4 or j >= 4 else BOX_COLOR
        cv2.line(image, _point(corners[i]), _point(corners[j]), color, _thickness(image), cv2.LINE_AA)
    return image


Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels
FONT = cv2.FONT_HERSHEY_SIMPLEX


def label_scale(face_height: float) -> float:
    """Font scale of a face's label: about a fifth of the face high, readable on small faces."""
    return float(np.clip(face_height / LABEL_FACE_HEIGHT, *LABEL_SCALES))


def _clamp(value: float, low: int, high: int) -> int:
    """``int(np.clip(value, low, high))`` at a fraction of its cost: labels try up to hundreds of places."""
    return int(min(max(value, low), high))


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(boxes: list[tuple[float, ...]], sizes: list[tuple[int, int]], image_shape) -> list[Rect]:
    """A rectangle per label (``sizes`` are (w, h)), inside the image, no two overlapping.

    Each label tries, in order: above its box, inside its top-left corner, below it; the first
    place free of the labels already placed wins, else it slides down until it is free.
    """
    height, width = image_shape[:2]
    placed: list[Rect] = []
    for (x1, y1, _, y2), (w, h) in zip(boxes, sizes, strict=True):
        x = _clamp(x1, 0, max(width - w, 0))

        def rect(top: float, x: int = x, w: int = w, h: int = h) -> Rect:
            top = _clamp(top, 0, max(height - h, 0))
            return x, top, x + w, top + h

        preferred = [rect(y1 - h - 1), rect(y1 + 1), rect(y2 + 1)]
        slides = (rect(top) for top in range(0, height - h + 1, max(1, h // 2)))  # only built when needed
        free = (c for c in itertools.chain(preferred, slides) if not any(_overlaps(c, p) for p in placed))
        placed.append(next(free, preferred[0]))
    return placed


def draw_text_box(image: np.ndarray, text: str, rect: Rect, scale: float) -> np.ndarray:
    """White ``text`` on a dark rectangle ``rect`` (in place)."""
    thickness = max(1, round(scale * 1.5))
    (_, h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    cv2.rectangle(image, rect[:2], (rect[2] - 1, rect[3] - 1), (0, 0, 0), -1)
    origin = (rect[0] + 2, rect[1] + 2 + h)
    cv2.putText(image, text, origin, FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return image


def label_size(text: str, scale: float) -> tuple[int, int]:
    """(width, height) of :func:`draw_text_box`'s rectangle for ``text``."""
    (w, h), baseline = cv2.getTextSize(text, FONT, scale, max(1, round(scale * 1.5)))
    return w + 4, h + baseline + 4


def draw_face(image: np.ndarray, face: FacePose, cube: bool = False) -> np.ndarray:
    """Box and axes (or cube) of one face (in place)."""
    x1, y1, x2, y2 = face.box
    cv2.rectangle(image, _point((x1, y1)), _point((x2, y2)), BOX_COLOR, _thickness(image))
    center = ((x1 + x2) / 2, (y1 + y2) / 2)
    size = AXIS_FRACTION * min(x2 - x1, y2 - y1)
    if cube:
        draw_cube(image, face.yaw, face.pitch, face.roll, center, size)
    draw_axis(image, face.yaw, face.pitch, face.roll, center, size)
    return image


def face_labels(result: PoseResult, image_shape) -> list[tuple[str, Rect, float]]:
    """``(number, rectangle, font scale)`` of each face's label: face ``i`` of ``result`` is ``i + 1``."""
    texts = [str(i + 1) for i in range(len(result.faces))]
    scales = [label_scale(f.box[3] - f.box[1]) for f in result.faces]
    sizes = [label_size(t, s) for t, s in zip(texts, scales, strict=True)]
    rects = place_labels([f.box for f in result.faces], sizes, image_shape)
    return list(zip(texts, rects, scales, strict=True))


def draw_poses(image: np.ndarray, result: PoseResult, cube: bool = False, label: bool = True) -> np.ndarray:
    """A copy of the RGB ``image`` with every face of ``result`` drawn and numbered in its order.

    Labels carry only the number (the angles are in the table or JSON, same order), sized to the
    face, inside the image and never on top of each other.
    """
    canvas = np.ascontiguousarray(image).copy()
    for face in result.faces:
        draw_face(canvas, face, cube)
    if label:
        for text, rect, scale in face_labels(result, canvas.shape):
            draw_text_box(canvas, text, rect, scale)
    return canvas


def _point(xy) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))


def drawing_style() -> dict:
    """The numbers of :func:`draw_poses` (RGB colours), for the drawings made elsewhere (the Webcam tab)."""
    return {
        "box_color": list(BOX_COLOR),
        "axis_colors": [list(color) for color in AXIS_COLORS],
        "line_per_pixels": LINE_PER_PIXELS,
        "axis_fraction": AXIS_FRACTION,
        "label_face_height": LABEL_FACE_HEIGHT,
        "label_scales": list(LABEL_SCALES),
    }
