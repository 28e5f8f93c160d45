"""The sets a default face detector is judged on: recall at least MTCNN's on each (tests/test_detection.py),
and each detector's recall with its time in bench/bench_pipeline.py.

* the 16 AFLW2000 samples, their horizontal mirror images and copies rotated by +-20 degrees (single
  portraits, turned and tilted heads), each face's visible-landmark box moved along;
* the wide frame: 1280x720 with five ~90-pixel faces (scikit-image's astronaut, head and shoulders, five
  times), the end-to-end benchmark's scene;
* the group collage: the 16 samples at 200x200 in a 4x4 grid, every other one mirrored (a group photo
  of small, turned and pitched faces; MTCNN misses one of them).

A face counts as found when a detected box is centred on its landmark box (``matched_box``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import scipy.io
import skimage.data
from PIL import Image

from .test_pipeline import AFLW, landmark_box, matched_box

ROTATION_DEG = 20.0
Box = tuple[float, float, float, float]  # x, y, w, h
Copy = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]  # (image, pt2d) -> both moved
Scene = tuple[str, np.ndarray, list[tuple[str, Box]]]  # (image id, RGB image, [(face id, landmark box)])


def _original(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return image, points


def _flipped(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    moved = points.copy()
    moved[0] = image.shape[1] - 1 - points[0]
    return np.ascontiguousarray(image[:, ::-1]), moved


def _rotated(degrees: float) -> Copy:
    def rotate(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = image.shape[:2]
        matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, 1.0)
        turned = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR)
        return turned, matrix @ np.vstack([points, np.ones(points.shape[1])])

    return rotate


COPIES: dict[str, Copy] = {
    "original": _original,
    "flipped": _flipped,
    f"rotated +{ROTATION_DEG:g}°": _rotated(ROTATION_DEG),
    f"rotated -{ROTATION_DEG:g}°": _rotated(-ROTATION_DEG),
}
WIDE, COLLAGE = "wide frame", "group collage"
SETS = (*COPIES, WIDE, COLLAGE)


def aflw_copy(name: str, folder: Path = AFLW) -> list[tuple[str, np.ndarray, Box]]:
    """``(sample id, RGB image, visible-landmark box xywh)`` of every sample, moved by ``COPIES[name]``."""
    samples = []
    for jpg in sorted(folder.glob("*.jpg")):
        points = scipy.io.loadmat(jpg.with_suffix(".mat"))["pt2d"].astype(np.float64)
        hidden = ~((points[0] > 0) & (points[1] > 0))
        image, moved = COPIES[name](np.asarray(Image.open(jpg).convert("RGB")), points)
        moved[:, hidden] = -1  # still hidden after the move (landmark_box skips them)
        samples.append((jpg.stem, image, landmark_box(moved)))
    return samples


# The astronaut's face in scikit-image's photo: the box every detector's mapped box agrees on (to 3 px).
ASTRONAUT_FACE: Box = (181.0, 89.0, 87.0, 87.0)
HEAD = (slice(20, 260), slice(130, 320))  # a 190x240 head-and-shoulders crop of the photo


def astronaut_scenes() -> dict[str, tuple[np.ndarray, list[Box]]]:
    """The end-to-end benchmark's scenes, ``name -> (RGB image, face boxes)``: 640x480 with one face (the
    photo stretched to 512x480 on grey) and the wide frame, 1280x720 with five ~90-pixel faces."""
    astronaut = skimage.data.astronaut()
    x, y, w, h = ASTRONAUT_FACE
    single = np.full((480, 640, 3), 200, np.uint8)
    single[:, 64:576] = cv2.resize(astronaut, (512, 480))
    several = np.full((720, 1280, 3), 180, np.uint8)
    faces = []
    for i in range(5):
        left, top = 20 + i * 250, 120 + (i % 2) * 300
        several[top : top + 240, left : left + 190] = astronaut[HEAD]
        faces.append((x - HEAD[1].start + left, y - HEAD[0].start + top, w, h))
    return {
        "640x480 1 face": (single, [(x + 64, y * 480 / 512, w, h * 480 / 512)]),
        "1280x720 5 faces": (several, faces),
    }


def jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def group_collage(columns: int = 4, side: int = 200) -> tuple[np.ndarray, list[tuple[str, Box]]]:
    """The 16 samples at ``side`` x ``side`` in a grid, the even-numbered ones mirrored; their face boxes."""
    originals, mirrored = aflw_copy("original"), aflw_copy("flipped")
    rows = -(-len(originals) // columns)
    collage = np.full((rows * side, columns * side, 3), 200, np.uint8)
    faces = []
    for index, (original, flipped) in enumerate(zip(originals, mirrored, strict=True)):
        sample, image, (x, y, w, h) = flipped if index % 2 == 0 else original
        factor = side / image.shape[0]
        top, left = divmod(index, columns)
        top, left = top * side, left * side
        collage[top : top + side, left : left + side] = cv2.resize(
            image, (side, side), interpolation=cv2.INTER_AREA
        )
        name = f"{sample} mirrored" if index % 2 == 0 else sample
        faces.append((name, (left + x * factor, top + y * factor, w * factor, h * factor)))
    return collage, faces


def detection_sets() -> dict[str, list[Scene]]:
    """Every set of :data:`SETS`: its images, each with its faces' ids and landmark boxes."""
    sets: dict[str, list[Scene]] = {
        name: [(sample, image, [(sample, box)]) for sample, image, box in aflw_copy(name)] for name in COPIES
    }
    wide, boxes = astronaut_scenes()["1280x720 5 faces"]
    sets[WIDE] = [("wide", wide, [(f"face {i + 1}", box) for i, box in enumerate(boxes)])]
    sets[COLLAGE] = [("collage", *group_collage())]
    return sets


def found(detector, images: list[Scene]) -> list[str]:
    """Ids of the faces of ``images`` that ``detector`` finds (a box centred on the landmark box)."""
    hits = []
    for _, image, faces in images:
        detections = detector.detect(image)
        hits += [face for face, box in faces if matched_box(detections, box) is not None]
    return hits


def faces_in(images: list[Scene]) -> int:
    return sum(len(faces) for _, _, faces in images)
