"""Video clips the tests build themselves, written with the project's own H.264 writer."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data

from fsanet.pipeline.video import H264Writer


def two_astronauts_clip(path: Path, frames: int = 3, fps: float = 10.0) -> Path:
    """A 512x256 clip of the astronaut twice side by side.

    The left copy is blurred, so the detector scores it lower and lists the right face first: only
    a left-to-right numbering puts the left face first.
    """
    face = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    frame = np.concatenate([cv2.GaussianBlur(face, (0, 0), 2), face], axis=1)
    with H264Writer(path, fps) as writer:
        for _ in range(frames):
            writer.write(frame)
    return path


def damaged_clip(path: Path, frames: int, damaged: range, fps: float = 10.0) -> Path:
    """A ``frames``-frame clip of the astronaut sliding sideways whose packets ``damaged`` are zeroed.

    Each frame differs from the last, so every packet holds data; a zeroed H.264 packet announces NAL
    units of length 0, which FFmpeg refuses to decode.
    """
    face = cv2.resize(skimage.data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    with H264Writer(path, fps) as writer:
        for index in range(frames):
            writer.write(np.roll(face, 4 * index, axis=1))
    with av.open(str(path)) as container:
        spans = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    for position, size in (spans[i] for i in damaged):
        data[position : position + size] = bytes(size)
    path.write_bytes(data)
    return path
