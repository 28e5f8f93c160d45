"""From a photo to head poses: load -> detect -> crop (the model's recipe) -> one batched forward.

:class:`PoseEstimator` holds a model and a detector, loaded once; :func:`estimate` is the
one-call form that reuses estimators between calls. :func:`to_json` gives the schema the CLI,
the Space and the leaderboard share::

    {"image": NAME, "faces": [{"box": [x1, y1, x2, y2], "score": s, "yaw": y, "pitch": p,
                               "roll": r, "model": NAME}, ...], "message": TEXT (optional)}
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from fsanet.data.geometry import rotation_matrix
from fsanet.data.imageio import MAX_ASPECT, MAX_PIXELS, ImageSource, load_image
from fsanet.data.preprocess import DEMO_MARGIN
from fsanet.data.recipes import CropProtocol, FaceCrop, fsanet_recipe
from fsanet.detect.detectors import DEFAULT_DETECTOR, Detection, Detector, create_detector
from fsanet.models.base import PoseModel
from fsanet.models.registry import load_model, recipe_of
from fsanet.runtime.engine import EngineModel
from fsanet.runtime.optimize import optimize_for_inference
from fsanet.utils import settings

DEFAULT_MODEL = "fsanet_fusion.300w_lp"
MAX_FACES = 32
# Detectors slow down with the pixel count, not with the face size they need: above this side
# the image is shrunk for detection only, and the boxes are mapped back to full resolution.
DETECT_MAX_SIDE = 1280


@dataclass(frozen=True)
class FacePose:
    """One face: detector box and score, angles in degrees, and the model's name."""

    box: tuple[float, float, float, float]
    score: float
    yaw: float
    pitch: float
    roll: float
    model: str
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def rotation(self) -> np.ndarray:
        """The head's ``(3, 3)`` rotation matrix (:func:`fsanet.data.geometry.rotation_matrix`), computed when
        asked: the pipeline itself never needs it."""
        return rotation_matrix(self.yaw, self.pitch, self.roll)

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(v, 1) for v in self.box],
            "score": round(self.score, 4),
            "yaw": round(self.yaw, 2),
            "pitch": round(self.pitch, 2),
            "roll": round(self.roll, 2),
            "model": self.model,
        }


@dataclass(frozen=True)
class PoseResult:
    """Every face of one image, numbered left to right (by the centre of its box: what the drawing, the JSON,
    the CLI and the Space show); ``message`` explains an empty or cut list."""

    faces: list[FacePose]
    image_size: tuple[int, int]  # (width, height)
    num_detected: int
    message: str | None = None

    @property
    def truncated(self) -> bool:
        return self.num_detected > len(self.faces)


def left_to_right(faces: list[FacePose]) -> list[FacePose]:
    """Faces ordered by the centre of their box, left to right (then top to bottom): the one face order."""
    return sorted(faces, key=lambda f: (f.box[0] + f.box[2], f.box[1] + f.box[3]))


def to_json(result: PoseResult, image: str) -> dict[str, Any]:
    """The shared JSON object of one image."""
    payload: dict[str, Any] = {"image": image, "faces": [face.to_dict() for face in result.faces]}
    if result.message:
        payload["message"] = result.message
    return payload


class PoseEstimator:
    """A model and a detector loaded once; call :meth:`estimate` on any number of images."""

    def __init__(
        self,
        model: str | nn.Module = DEFAULT_MODEL,
        detector: str | Detector = DEFAULT_DETECTOR,
        device: str | torch.device | None = None,
        max_faces: int = MAX_FACES,
        detect_max_side: int = DETECT_MAX_SIDE,
        margin: float = DEMO_MARGIN,
        max_pixels: int = MAX_PIXELS,
        max_aspect: float = MAX_ASPECT,
    ):
        if max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, not {max_faces}")
        self.device = settings.device(device)
        self.model = (model if isinstance(model, nn.Module) else load_model(model)).to(self.device).eval()
        if isinstance(self.model, PoseModel):  # the project's models run as frozen, BN-folded graphs
            self.model = optimize_for_inference(self.model)
        self.model_name: str = getattr(self.model, "name", type(self.model).__name__)
        self.detector = create_detector(detector) if isinstance(detector, str) else detector
        self.max_faces = max_faces
        self.detect_max_side = detect_max_side
        self.margin = margin
        # The model's own crop (FSA-Net's: the authors' demo, with this margin); a bare module gets FSA-Net's.
        config = getattr(self.model, "config", None)
        self.recipe = recipe_of(config) if config else fsanet_recipe()
        self.protocol = CropProtocol(margin=margin)
        self.crop = FaceCrop(self.recipe, self.protocol)  # resolved once
        self.max_pixels = max_pixels
        self.max_aspect = max_aspect

    def load(self, image: ImageSource) -> np.ndarray:
        """Decode and validate ``image`` with this estimator's caps."""
        return load_image(image, self.max_pixels, self.max_aspect)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces of an RGB array, detected on a downsized copy when the image is very large."""
        longest = max(image.shape[:2])
        if longest <= self.detect_max_side:
            return self.detector.detect(image)
        factor = self.detect_max_side / longest
        small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        return [d.scaled(1.0 / factor) for d in self.detector.detect(small)]

    def estimate(self, image: ImageSource) -> PoseResult:
        """Poses of every face in ``image`` (path, bytes, file, PIL image or RGB array)."""
        return self.estimate_rgb(self.load(image))

    def estimate_rgb(self, image: np.ndarray) -> PoseResult:
        """Poses of every face in an already loaded RGB ``uint8`` ``(H, W, 3)`` array."""
        height, width = image.shape[:2]
        detections = self.detect(image)
        kept = detections[: self.max_faces]
        message = None
        if not detections:
            message = "no face found"
        elif len(kept) < len(detections):
            message = f"kept the {len(kept)} best of {len(detections)} faces (max_faces={self.max_faces})"
        angles = self.predict_angles(image, [d.box for d in kept])
        faces = [
            FacePose(d.box, d.score, *map(float, a), model=self.model_name, landmarks=d.landmarks)
            for d, a in zip(kept, angles, strict=True)
        ]  # the best-scored faces are kept; they are numbered on screen, left to right
        return PoseResult(left_to_right(faces), (width, height), len(detections), message)

    def predict_angles(self, image: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
        """``(N, 3)`` degrees [yaw, pitch, roll] for ``boxes`` (x1, y1, x2, y2), in one forward pass."""
        if not boxes:
            return np.zeros((0, 3), np.float64)
        batch = self.crop.batch(image, boxes)
        if isinstance(self.model, EngineModel):  # NumPy from the decoded photo to the angles (ONNX Runtime)
            output = self.model.angles(batch)
        else:
            with torch.inference_mode():
                output = self.model(torch.from_numpy(batch).to(self.device)).cpu().numpy()
        return output.astype(np.float64).reshape(len(boxes), 3)


@functools.lru_cache(maxsize=4)
def _cached_estimator(model: str, detector: str) -> PoseEstimator:
    return PoseEstimator(model, detector)


def estimate(
    image: ImageSource,
    model: str | nn.Module = DEFAULT_MODEL,
    detector: str | Detector = DEFAULT_DETECTOR,
    **options: Any,
) -> PoseResult:
    """One call from an image to its poses; models named by string are loaded once per process.

    ``options`` are :class:`PoseEstimator`'s (``max_faces``, ``device``, ...); with options or
    module objects a new estimator is built for the call.
    """
    if isinstance(model, str) and isinstance(detector, str) and not options:
        estimator = _cached_estimator(model, detector)
    else:
        estimator = PoseEstimator(model, detector, **options)
    return estimator.estimate(image)


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class PoseSmoother:
    """Exponential smoothing of the angles of faces that persist between video frames.

    A face is matched to the previous frame's face with the largest box IoU (at least
    ``min_iou``); ``alpha`` is the weight of the new frame (1 = no smoothing).
    """

    def __init__(self, alpha: float = 0.5, min_iou: float = 0.3):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], not {alpha}")
        self.alpha = alpha
        self.min_iou = min_iou
        self._previous: list[FacePose] = []

    def __call__(self, result: PoseResult) -> PoseResult:
        smoothed = {}
        available = list(self._previous)
        best_first = sorted(enumerate(result.faces), key=lambda item: -item[1].score)  # best matched first
        for index, face in best_first:
            match = max(available, key=lambda p: box_iou(p.box, face.box), default=None)
            if match is not None and box_iou(match.box, face.box) >= self.min_iou:
                available.remove(match)
                a = self.alpha
                yaw, pitch, roll = (
                    a * getattr(face, k) + (1 - a) * getattr(match, k) for k in ("yaw", "pitch", "roll")
                )
                face = FacePose(face.box, face.score, yaw, pitch, roll, face.model, face.landmarks)
            smoothed[index] = face
        faces = [smoothed[index] for index in range(len(result.faces))]  # in the result's own order
        self._previous = faces
        return PoseResult(faces, result.image_size, result.num_detected, result.message)
