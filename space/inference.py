"""Photo and webcam wiring: uploaded file or frame -> shared estimator -> annotated image + faces JSON.

Failures a user can fix (:class:`fsanet.FSANetError`: unreadable image, missing weights, unknown
detector) reach the browser and gradio_client as a :class:`gradio.Error` with the library's message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from fsanet import FSANetError
from fsanet.detect.detectors import DEFAULT_DETECTOR
from fsanet.pipeline.drawing import draw_poses
from fsanet.pipeline.estimate import DEFAULT_MODEL, DETECT_MAX_SIDE, PoseResult, to_json
from space import runtime
from space.outputs import save_jpeg

# The webcam path detects on a frame shrunk to this side: faces near a camera are large, and
# MTCNN's time grows with the pixel count (640x480 at full size is about 4x slower).
WEBCAM_DETECT_SIDE = 320
FACE_COLUMNS = ["face", "yaw", "pitch", "roll", "score", "box"]


def _estimate(
    image: str | np.ndarray, model: str, detector: str, detect_side: int = DETECT_MAX_SIDE
) -> tuple[np.ndarray, PoseResult]:
    try:
        estimator = runtime.estimator(model, detector, detect_side)
        rgb = estimator.load(image)
        return rgb, estimator.estimate_rgb(rgb)
    except FSANetError as error:
        raise gr.Error(str(error), title="Cannot estimate head poses") from None


@runtime.gpu
def predict(
    image: str | None, model: str = DEFAULT_MODEL, detector: str = DEFAULT_DETECTOR
) -> tuple[str, dict[str, Any]]:
    """Photo -> (annotated JPEG path, faces JSON in the ``python -m fsanet predict --json`` schema)."""
    if not image:
        raise gr.Error("No image: upload, paste or pick an example photo first.")
    rgb, result = _estimate(image, model, detector)
    return save_jpeg(draw_poses(rgb, result)), to_json(result, Path(image).name)


def faces_rows(payload: dict[str, Any] | None) -> list[list[Any]]:
    """The faces of a /predict JSON as table rows (``FACE_COLUMNS``)."""
    faces = (payload or {}).get("faces", [])
    return [[i + 1, f["yaw"], f["pitch"], f["roll"], f["score"], f["box"]] for i, f in enumerate(faces)]


def describe(result: PoseResult, frame: int) -> str:
    """One line per face with its angles, under a frame counter (or why there is no face)."""
    lines = [
        f"frame {frame}: {len(result.faces)} face(s)" + (f" ({result.message})" if result.message else "")
    ]
    lines += [
        f"face {i + 1}: yaw {f.yaw:+.1f}°  pitch {f.pitch:+.1f}°  roll {f.roll:+.1f}°"
        for i, f in enumerate(result.faces)
    ]
    return "\n".join(lines)


@runtime.gpu
def webcam_frame(frame: np.ndarray | None, model: str, frames: int) -> tuple[np.ndarray | None, str, int]:
    """One webcam frame -> (annotated frame, angles per face, processed-frame count).

    The browser captures a new frame only when the previous one has come back, so a slow server
    gets fewer frames instead of a growing backlog.
    """
    if frame is None:
        return None, "waiting for the camera", frames
    rgb, result = _estimate(frame, model, DEFAULT_DETECTOR, WEBCAM_DETECT_SIDE)
    frames += 1
    return draw_poses(rgb, result), describe(result, frames), frames
