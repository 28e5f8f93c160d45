"""Draw poses on RGB images: axes (x red, y green, z blue), an optional cube, the box and a label.

Axes are the columns of :func:`fsanet.data.geometry.rotation_matrix` projected orthographically, the
FSA-Net/Hopenet ``draw_axis``: the red x axis points to the image right at rest, green y
down, blue z along the viewing axis (it swings left as yaw grows, up as pitch grows).
"""

from __future__ import annotations

import cv2
import numpy as np

from fsanet.data.geometry import rotation_matrix
from fsanet.pipeline.estimate import FacePose, PoseResult

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
AXIS_COLORS = (RED, GREEN, BLUE)
BOX_COLOR = (255, 200, 0)
# Cube corners in head coordinates: a square around the face, extruded along the z axis.
_CUBE = np.array([[x, y, z] for z in (0.0, 2.0) for x, y in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
_CUBE_EDGES = [(i, (i + 1) % 4) for i in range(4)] + [(i + 4, (i + 1) % 4 + 4) for i in range(4)]
_CUBE_EDGES += [(i, i + 4) for i in range(4)]


def _thickness(image: np.ndarray) -> int:
    return max(1, round(max(image.shape[:2]) / 400))


def draw_axis(
    image: np.ndarray, yaw: float, pitch: float, roll: float, center: tuple[float, float], size: float
) -> np.ndarray:
    """Draw the three head axes of length ``size`` from ``center`` on ``image`` (in place)."""
    tips = size * rotation_matrix(yaw, pitch, roll)[:2, :].T  # (3 axes, x/y)
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


def draw_label(image: np.ndarray, text: str, anchor: tuple[float, float]) -> np.ndarray:
    """White text on a dark band above ``anchor`` (x, y), kept inside the image (in place)."""
    scale = max(0.4, max(image.shape[:2]) / 1400)
    thickness = max(1, round(scale * 1.5))
    (w, h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x = int(np.clip(anchor[0], 0, max(image.shape[1] - w, 0)))
    y = int(np.clip(anchor[1], h + baseline, image.shape[0]))
    cv2.rectangle(image, (x, y - h - baseline), (x + w, y), (0, 0, 0), -1)
    cv2.putText(
        image,
        text,
        (x, y - baseline),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        thickness,
        cv2.LINE_AA,
    )
    return image


def draw_face(image: np.ndarray, face: FacePose, cube: bool = False, label: bool = True) -> np.ndarray:
    """Box, axes (or cube) and a "yaw pitch roll" label of one face (in place)."""
    x1, y1, x2, y2 = face.box
    cv2.rectangle(image, _point((x1, y1)), _point((x2, y2)), BOX_COLOR, _thickness(image))
    center = ((x1 + x2) / 2, (y1 + y2) / 2)
    size = 0.5 * min(x2 - x1, y2 - y1)
    if cube:
        draw_cube(image, face.yaw, face.pitch, face.roll, center, size)
    draw_axis(image, face.yaw, face.pitch, face.roll, center, size)
    if label:
        draw_label(image, f"yaw {face.yaw:.0f} pitch {face.pitch:.0f} roll {face.roll:.0f}", (x1, y1 - 2))
    return image


def draw_poses(image: np.ndarray, result: PoseResult, cube: bool = False, label: bool = True) -> np.ndarray:
    """A copy of the RGB ``image`` with every face of ``result`` drawn on it."""
    canvas = np.ascontiguousarray(image).copy()
    for face in result.faces:
        draw_face(canvas, face, cube, label)
    return canvas


def _point(xy) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))
