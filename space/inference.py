"""Photo, webcam and video wiring: uploaded file or frame -> checks -> shared estimator -> results.

Every file is checked by :mod:`fsanet.data.imageio` (header first, then decoded) under the caps of
:mod:`space.uploads`, and runs inside :data:`space.fairness.admission`. Failures a user can fix
(:class:`fsanet.FSANetError`: unreadable image, missing weights, unknown detector) reach the
browser and gradio_client as a :class:`gradio.Error` with the library's message, which names the
uploaded file, never a server path. Faces are numbered left to right, on the image and in the JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

import gradio as gr
import numpy as np
from pydantic import BaseModel, ValidationError

from fsanet import FSANetError
from fsanet.data.imageio import check_size, open_image
from fsanet.detect.detectors import DEFAULT_DETECTOR
from fsanet.pipeline.drawing import draw_poses
from fsanet.pipeline.estimate import DEFAULT_MODEL, PoseResult, to_json
from fsanet.pipeline.video import H264Writer, PosedFrame, VideoInfo, estimate_video, probe_video
from fsanet.utils.files import annotated_name
from space import outputs, runtime
from space.clients import client_key
from space.fairness import VIDEO, Busy, admission
from space.refusals import MISFIT, refusal
from space.settings import max_photo_bytes, max_video_seconds
from space.uploads import MAX_FRAME_PIXELS, MAX_VIDEO_FRAME_PIXELS, check_video_file, display_name

# The webcam path detects on a frame shrunk to this side: faces near a camera are large, and
# MTCNN's time grows with the pixel count (640x480 at full size is about 4x slower).
WEBCAM_DETECT_SIDE = 320
MAX_VIDEO_FPS = 120  # above any camera users film with
FACE_COLUMNS = ["face", "yaw", "pitch", "roll", "score", "box"]
NO_IMAGE = "No image: upload, paste or pick an example photo first."


def estimate_upload(
    source: str | bytes,
    model: str,
    detector: str,
    request: gr.Request | None,
    detect_side: int | None = None,
    max_pixels: int | None = None,
    mirrored: bool = False,
) -> tuple[str, np.ndarray, PoseResult]:
    """(display name, RGB image, faces left to right) of an upload; raises FSANetError or Busy.

    The file is read once and its header checked before the request takes a worker slot; the pixels
    are decoded only inside the slot.
    """
    name = display_name(source)
    caps: dict[str, int] = {"max_bytes": max_photo_bytes()}
    if max_pixels:
        caps["max_pixels"] = max_pixels
    with open_image(source, name=name, **caps) as upload:
        width, height = upload.size
        with admission.admit(client_key(request), width * height):
            options = {"detect_max_side": detect_side} if detect_side else {}
            estimator = runtime.estimator(model, detector, **options)
            rgb = upload.decode()
            if mirrored:  # the browser mirrors webcam frames like a mirror; the model needs the camera's view
                rgb = np.ascontiguousarray(rgb[:, ::-1])
            return name, rgb, estimator.estimate_rgb(rgb)


@runtime.gpu
def predict(
    image: str | None,
    model: str = DEFAULT_MODEL,
    detector: str = DEFAULT_DETECTOR,
    request: gr.Request | None = None,
) -> tuple[str, dict[str, Any]]:
    """Photo -> (annotated JPEG path, faces JSON in the ``python -m fsanet predict --json`` schema).

    Faces are numbered left to right: face ``i`` on the image is ``faces[i - 1]`` in the JSON.
    """
    if not image:
        raise gr.Error(NO_IMAGE, title="Cannot estimate head poses")
    try:
        name, rgb, result = estimate_upload(image, model, detector, request)
    except (FSANetError, Busy) as error:
        raise gr.Error(str(error), title="Cannot estimate head poses") from None
    return outputs.save_jpeg(draw_poses(rgb, result)), to_json(result, name)


class _Face(BaseModel):
    box: list[float]
    score: float
    yaw: float
    pitch: float
    roll: float


class _Faces(BaseModel):  # a photo's result: what predict returns
    faces: list[_Face]
    message: str | None = None


class _Frames(BaseModel):  # a video's result: what predict_video returns
    frames: list[dict[str, Any]]
    message: str | None = None


def _shown(payload: Any, shape: type[BaseModel]) -> dict[str, Any] | None:
    """A result as the page sends it back to the handlers below (the page holds what is on screen), checked
    against ``shape`` first: a hand-made request may send anything, and gets the one-line refusal."""
    if payload is None:
        return None
    try:
        shape.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        detail = f" ({where}: {first['msg']})" if where else ""
        raise refusal(f"{MISFIT}: a result JSON object was expected{detail}") from None
    return payload


def faces_rows(payload: dict[str, Any] | None) -> list[list[Any]]:
    """The faces of a /predict JSON as table rows (``FACE_COLUMNS``), numbered as on the image."""
    faces = (_shown(payload, _Faces) or {}).get("faces", [])
    return [[i + 1, f["yaw"], f["pitch"], f["roll"], f["score"], f["box"]] for i, f in enumerate(faces)]


def faces_status(payload: dict[str, Any] | None) -> str:
    """A visible line over the table: how many faces, or that none was found."""
    if not _shown(payload, _Faces):
        return ""
    faces = payload.get("faces", [])
    if not faces:
        return (
            "### ⚠️ No face found\nTry a larger or sharper photo, a face turned less than about 90°, "
            "or another face detector."
        )
    note = f" ({payload['message']})" if payload.get("message") else ""
    return f"**{len(faces)} face(s)**, numbered left to right on the image and in the table{note}."


STALE = "⚠️ **Out of date:** the result below was estimated with another model or detector."
STALE_VIDEO = (
    "⚠️ **Out of date:** this video was annotated with another model or detector; press "
    "“Estimate head poses” to redo it."
)
# Codecs Chromium and Firefox play; the server reads many more (OpenCV's mp4v, MJPEG, HEVC...).
BROWSER_CODECS = frozenset({"h264", "vp8", "vp9", "av1"})


def stale_status(payload: dict[str, Any] | None) -> Any:
    """The photo status once a picker changed: out of date when a result is on screen (else unchanged)."""
    return STALE if _shown(payload, _Faces) else gr.skip()


def rerun(
    image: str | None,
    model: str,
    detector: str,
    payload: dict[str, Any] | None,
    request: gr.Request | None = None,
) -> tuple[Any, Any]:
    """The photo estimated again with the new picks, when a result of it is on screen (else nothing)."""
    if not image or not _shown(payload, _Faces):
        return gr.skip(), gr.skip()
    return predict(image, model, detector, request)


def video_status(payload: dict[str, Any] | None) -> str:
    """The line over a video's JSON: how many frames were annotated, or what of the file was damaged."""
    if not _shown(payload, _Frames):
        return ""
    if payload.get("message"):
        return f"⚠️ {payload['message']}"
    return f"**{len(payload['frames'])} frame(s)** annotated, faces numbered left to right in each."


def stale_video_status(payload: dict[str, Any] | None) -> Any:
    """The video status once a picker changed: out of date when a result is on screen (else unchanged)."""
    return STALE_VIDEO if _shown(payload, _Frames) else gr.skip()


def clip_status(video: str | None) -> str:
    """What the server reads in an uploaded clip (or why it will refuse it), shown under the input.

    Browsers preview only some codecs; this line says the clip is fine when its preview stays blank.
    """
    if not video:
        return ""
    try:
        info = checked_video(video)
    except FSANetError as error:
        return f"⚠️ {error}"
    facts = (
        f"{display_name(video)}: {info.width}×{info.height}, {info.fps:g} fps, {info.duration_s:.1f} s, "
        f"{info.codec}"
    )
    if info.codec in BROWSER_CODECS:
        return facts
    return (
        f"{facts}. Your browser may not preview this codec; the server reads it: press “Estimate head poses”."
    )


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
def webcam_frame(
    frame: str | bytes | None,
    model: str = DEFAULT_MODEL,
    detector: str = DEFAULT_DETECTOR,
    frames: int = 0,
    request: gr.Request | None = None,
) -> tuple[Any, str, int]:
    """One mirrored webcam frame -> (annotated camera-view frame, angles per face, processed-frame count).

    The estimate runs on the un-mirrored frame, so the angles are the Photo tab's for the same head.
    A failure (a model whose weights are missing, say) is reported in the angles box and the stream
    goes on: one message, no flood of pop-ups, and it recovers as soon as the choice is changed.
    """
    if frame is None:
        return gr.skip(), "waiting for the camera", frames
    try:
        _, rgb, result = estimate_upload(
            frame, model, detector, request, WEBCAM_DETECT_SIDE, MAX_FRAME_PIXELS, mirrored=True
        )
    except (FSANetError, Busy) as error:
        return gr.skip(), f"⚠️ {error}", frames
    frames += 1
    return draw_poses(rgb, result), describe(result, frames), frames


@runtime.gpu
def predict_video(
    video: str | None,
    model: str = DEFAULT_MODEL,
    detector: str = DEFAULT_DETECTOR,
    request: gr.Request | None = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way of asking for a progress bar)
) -> tuple[str, dict[str, Any], str]:
    """Video -> (annotated H.264 MP4, ``{"video": name, "fps", "frames": [faces JSON + "frame"]}``, that JSON
    as a file); the files are named after the upload as the CLI names them (``clip_pose.mp4``, ``.json``).

    A damaged file gives its readable frames plus ``"unreadable_frames"`` and ``"message"`` (the CLI's
    line) in the JSON, and a warning on the page.
    """
    if not video:
        raise gr.Error("No video: upload a short clip first.", title="Cannot process the video")
    try:
        return _predict_video(video, model, detector, request, progress)
    except (FSANetError, Busy) as error:
        raise gr.Error(str(error), title="Cannot process the video") from None


def checked_video(video: str) -> VideoInfo:
    """The container facts of an uploaded clip, after the Space's caps (size, duration, frame size)."""
    name = display_name(video)
    check_video_file(video)
    info = probe_video(video, name=name)
    if info.duration_s > max_video_seconds():
        limit = max_video_seconds()
        raise FSANetError(f"{name} lasts {info.duration_s:.1f} s, more than the cap of {limit:g} s")
    check_size(info.width, info.height, MAX_VIDEO_FRAME_PIXELS, name=name)
    return info


def _predict_video(
    video: str, model: str, detector: str, request: gr.Request | None, progress: gr.Progress
) -> tuple[str, dict[str, Any], str]:
    name = display_name(video)
    info = checked_video(video)
    # The container's frame rate is the uploader's word: bound it, so a claimed 10,000 fps buys no frames.
    max_frames = math.ceil(max_video_seconds() * min(info.fps, MAX_VIDEO_FPS)) + 1
    records = []

    def check_frame(rgb: np.ndarray) -> None:  # the container's size is the uploader's word too
        check_size(rgb.shape[1], rgb.shape[0], MAX_VIDEO_FRAME_PIXELS, name=name)

    def record(frame: PosedFrame) -> None:
        records.append({"frame": frame.index, **to_json(frame.result, name)})
        progress((frame.index + 1, max(info.frames, frame.index + 1)), desc="frames", unit="frames")

    with admission.admit(client_key(request), VIDEO):
        estimator = runtime.estimator(model, detector)
        folder = outputs.new_folder()
        path = folder / annotated_name(name, ".mp4")
        with H264Writer(path, info.fps) as writer:
            run = estimate_video(
                video,
                estimator,
                record,
                writer=writer,
                max_frames=max_frames,
                check_frame=check_frame,
                name=name,
            )
    payload = {"video": name, "fps": info.fps, "frames": records}
    if run.problem:  # the readable frames are the result; the damage is said with it, as the CLI does
        payload |= {"unreadable_frames": run.unreadable, "message": run.problem}
        gr.Warning(run.problem, title="Damaged video")
    frames_file = folder / annotated_name(name, ".json")
    frames_file.write_text(json.dumps(payload, indent=1) + "\n")
    return str(path), payload, str(frames_file)
