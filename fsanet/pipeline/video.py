"""Videos in and out: what a file holds (read from its container, before decoding), an H.264 writer,
and :func:`estimate_video`, the one frame loop of the CLI and the Space.

Frames are decoded with PyAV (the FFmpeg OpenCV also uses), packet by packet: a damaged packet is
skipped and counted, and decoding goes on after it, so a file damaged in the middle still gives its
later frames and says how many it lost (:attr:`VideoRun.problem`).

The writer makes MP4 files browsers play (H.264 High profile, yuv420p, ``+faststart`` so playback
starts before the download ends), through PyAV's bundled FFmpeg and libx264. OpenCV's ``mp4v``
(MPEG-4 Part 2) files do not play in Chrome or Firefox.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from fsanet.errors import InvalidImageError
from fsanet.pipeline.drawing import draw_poses
from fsanet.pipeline.estimate import PoseEstimator, PoseResult, PoseSmoother


@dataclass(frozen=True)
class VideoInfo:
    """Container facts of a video: frame size, frame rate, duration (s), frame count (estimated), codec."""

    width: int
    height: int
    fps: float
    duration_s: float
    frames: int
    codec: str


def probe_video(path: str | os.PathLike, name: str | None = None) -> VideoInfo:
    """Read a video's size, rate and duration from its container headers, decoding no frame."""
    with _open_video(path, name or str(path)) as (container, stream):
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = (stream.frames or 0) / fps
        frames = stream.frames or round(duration * fps)
        context = stream.codec_context
        return VideoInfo(context.width, context.height, fps, duration, frames, context.name)


@contextlib.contextmanager
def _open_video(
    path: str | os.PathLike, label: str
) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """The open container and its first video stream; refusals name ``label``, never the path."""
    try:
        container = av.open(str(path))
    except av.FFmpegError as error:
        raise InvalidImageError(f"{label} is not a video FFmpeg can read ({error.strerror})") from None
    with container:
        if not container.streams.video:
            raise InvalidImageError(f"{label} has no video stream")
        yield container, container.streams.video[0]


class _DecodedFrames:
    """The upright RGB frames of a file's first video stream, in order; packets that fail to decode are
    skipped and counted, and decoding resumes at the next one."""

    def __init__(self, path: str | os.PathLike, label: str):
        self.path, self.label = path, label
        self.packets = self.decoded = self.failed = 0
        self.finished = False

    def __iter__(self) -> Iterator[np.ndarray]:
        with _open_video(self.path, self.label) as (container, stream):
            try:
                for packet in container.demux(stream):
                    self.packets += packet.size > 0  # the last, empty packet only flushes the decoder
                    try:
                        frames = [_upright(frame) for frame in packet.decode()]
                    except (av.FFmpegError, ValueError):  # data FFmpeg refuses, or pixels it cannot convert
                        self.failed += 1
                        continue
                    for rgb in frames:
                        self.decoded += 1
                        yield rgb
            except av.FFmpegError:  # the container itself breaks off: the frames it announced are lost
                self.packets = max(self.packets, stream.frames)
            self.finished = True

    @property
    def unreadable(self) -> int:
        """Frames lost so far: once the decoder is flushed, every packet should have given one frame."""
        return max(self.failed, self.packets - self.decoded) if self.finished else self.failed


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """RGB pixels turned as the file's display matrix says (phones film portrait clips sideways)."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round(frame.rotation / 90) % 4  # counter-clockwise quarter turns
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


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


@dataclass(frozen=True)
class VideoRun:
    """What :func:`estimate_video` did with a file: frames estimated, and frames it holds that could not
    be decoded (damaged data)."""

    name: str
    estimated: int
    unreadable: int

    @property
    def problem(self) -> str | None:
        """The one line the CLI and the Space give for a damaged file; ``None`` when every frame was read."""
        if not self.unreadable:
            return None
        total = self.estimated + self.unreadable
        return (
            f"{self.name} is damaged: {self.unreadable} of its {total} frames could not be decoded "
            f"(the other {self.estimated} were estimated)"
        )


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
) -> VideoRun:
    """Estimate every readable frame of a video in order; say how many were estimated and how many lost.

    Each frame's faces are smoothed (``smoothing``: :class:`PoseSmoother`'s alpha) and numbered left to
    right, drawn into ``writer`` when one is given, then handed to ``on_frame`` (the caller's own
    reporting). ``max_frames`` stops the loop before any further frame is estimated; ``check_frame``
    sees every frame's pixels before the estimator does and raises to refuse it. ``name`` stands for
    the file in messages (a server must not show its own paths). A file with no readable frame at all
    is refused; one with some is reported in :attr:`VideoRun.problem`.
    """
    label = name or str(path)
    frames = _DecodedFrames(path, label)
    smoother = PoseSmoother(smoothing) if smoothing is not None else None
    index = 0
    decoded = iter(frames)
    with contextlib.closing(decoded):  # closes the file when the cap or a refused frame ends the loop
        for rgb in itertools.islice(decoded, max_frames):  # no frame is even decoded past the cap
            if check_frame is not None:
                check_frame(rgb)
            result = estimator.estimate_rgb(rgb)
            result = smoother(result) if smoother else result
            if writer is not None:
                writer.write(draw_poses(rgb, result, cube=cube))
            on_frame(PosedFrame(index, rgb, result))
            index += 1
    if index == 0:
        lost = f" ({frames.unreadable} could not be decoded)" if frames.unreadable else ""
        raise InvalidImageError(f"{label} has no readable frame{lost}")
    return VideoRun(label, index, frames.unreadable)
