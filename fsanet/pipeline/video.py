"""Videos in and out: what a file holds (read from its container, before decoding), an H.264 writer,
and :func:`estimate_video`, the one frame loop of the CLI and the Space.

The writer makes MP4 files browsers play (H.264 High profile, yuv420p, ``+faststart`` so playback
starts before the download ends), through PyAV's bundled FFmpeg and libx264. OpenCV's ``mp4v``
(MPEG-4 Part 2) files do not play in Chrome or Firefox.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from fsanet.errors import InvalidImageError
from fsanet.pipeline.drawing import draw_poses
from fsanet.pipeline.estimate import PoseEstimator, PoseResult, PoseSmoother


@dataclass(frozen=True)
class VideoInfo:
    """Container facts of a video: frame size, frame rate, duration (s) and frame count (estimated)."""

    width: int
    height: int
    fps: float
    duration_s: float
    frames: int


def probe_video(path: str | os.PathLike, name: str | None = None) -> VideoInfo:
    """Read a video's size, rate and duration from its container headers, decoding no frame."""
    label = name or str(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidImageError(f"{label} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = (stream.frames or 0) / fps
            frames = stream.frames or round(duration * fps)
            return VideoInfo(stream.codec_context.width, stream.codec_context.height, fps, duration, frames)
    except av.FFmpegError as error:
        raise InvalidImageError(f"{label} is not a video FFmpeg can read ({error.strerror})") from None


class H264Writer:
    """Write RGB ``uint8`` frames to an MP4 file as browser-playable H.264; use as a context manager.

    Odd frame sizes are padded by one pixel (yuv420p needs even sides).
    """

    def __init__(self, path: str | os.PathLike, fps: float, crf: int = 23):
        self.path = Path(path)
        self.fps = fps
        self.crf = crf
        self._container = None
        self._stream = None
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        height, width = rgb.shape[:2]
        padded = np.pad(rgb, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        if self._stream is None:
            self._open(padded.shape[1], padded.shape[0])
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="rgb24")
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def _open(self, width: int, height: int) -> None:
        self._container = av.open(str(self.path), "w", options={"movflags": "+faststart"})
        rate = Fraction(self.fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(self.crf), "preset": "veryfast"}

    def close(self) -> None:
        if self._container is not None:
            self._container.mux(self._stream.encode(None))  # flush the encoder's delayed frames
            self._container.close()
            self._container = None

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


@dataclass(frozen=True)
class PosedFrame:
    """One estimated video frame: its index from 0, its RGB pixels as read, and its faces left to right."""

    index: int
    rgb: np.ndarray
    result: PoseResult


def estimate_video(
    path: str | os.PathLike,
    estimator: PoseEstimator,
    on_frame: Callable[[PosedFrame], None],
    *,
    writer: H264Writer | None = None,
    smoothing: float | None = None,
    cube: bool = False,
    max_frames: int | None = None,
    check_frame: Callable[[np.ndarray], None] | None = None,
    name: str | None = None,
) -> int:
    """Estimate every frame of a video in order and return how many were estimated.

    Each frame's faces are smoothed (``smoothing``: :class:`PoseSmoother`'s alpha) and numbered left to
    right, drawn into ``writer`` when one is given, then handed to ``on_frame`` (the caller's own
    reporting). ``max_frames`` stops the loop before any further frame is estimated; ``check_frame``
    sees every frame's pixels before the estimator does and raises to refuse it. ``name`` stands for
    the file in messages (a server must not show its own paths).
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InvalidImageError(f"{name or path} is not a video OpenCV can read")
    smoother = PoseSmoother(smoothing) if smoothing is not None else None
    index = 0
    try:
        while max_frames is None or index < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if check_frame is not None:
                check_frame(rgb)
            result = estimator.estimate_rgb(rgb)
            result = smoother(result) if smoother else result
            if writer is not None:
                writer.write(draw_poses(rgb, result, cube=cube))
            on_frame(PosedFrame(index, rgb, result))
            index += 1
    finally:
        capture.release()
    return index
