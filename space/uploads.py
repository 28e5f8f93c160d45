"""Uploads checked by the project, never decoded by Gradio, and the caps on them.

:func:`uploaded_image` looks and behaves like ``gr.Image`` in the browser and the API, but hands
the uploaded file over untouched: Gradio's own ``gr.Image`` decodes every upload with Pillow
before the app sees it (a 13000² PNG costs 400 MB before any cap applies, a 16-bit PNG comes out
white, a truncated PNG comes out black, a broken file gives Gradio's message with a server path).
Here :mod:`fsanet.data.imageio` reads the header first and decodes only what passes its caps, so
the Space and ``python -m fsanet predict`` agree on every file.

Environment variables (sizes in MB of 2**20 bytes):

* ``SPACE_MAX_PHOTO_MB``: largest photo or webcam frame (default 20);
* ``SPACE_MAX_VIDEO_MB``, ``SPACE_MAX_VIDEO_S``: largest video and its longest duration (default 50, 20);
* ``SPACE_MAX_UPLOAD_MB``: largest file Gradio accepts at all (default: the largest of the caps above
  and ``LEADERBOARD_MAX_SUBMISSION_MB``, 200), so a 45 MB submission passes while photos stop at 20 MB.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

import gradio as gr

from fsanet import InvalidImageError
from leaderboard.settings import max_submission_bytes
from space.settings import max_photo_bytes, max_upload_bytes_setting, max_video_bytes

# Webcam frames: a 1280x720 frame is ~1 MP; a bigger "frame" is an API caller's photo in disguise.
MAX_FRAME_PIXELS = 4_000_000
# Video frames are processed one by one: above Full HD a short clip is already minutes of work.
MAX_VIDEO_FRAME_PIXELS = 1920 * 1088


def max_upload_bytes() -> int:
    """Gradio's cap on any upload: ``SPACE_MAX_UPLOAD_MB``, else the largest submission or media cap."""
    setting = max_upload_bytes_setting()
    largest = max(max_submission_bytes(), max_photo_bytes(), max_video_bytes())
    return setting if setting is not None else largest


def uploaded_image(**options: Any) -> gr.Image:
    """A ``gr.Image`` whose input reaches the app undecoded: the file's path (or a data URL's bytes).

    The instance's ``preprocess`` is replaced rather than subclassed: a ``gr.Image`` subclass makes
    Gradio write a ``.pyi`` stub next to this module at every start.
    """
    component = gr.Image(**options)
    component.preprocess = _undecoded
    return component


def _undecoded(payload: Any) -> str | bytes | None:
    if payload is None:
        return None
    if payload.url and payload.url.startswith("data:"):
        return _data_url_bytes(payload.url)
    if payload.path is None:
        raise gr.Error("The upload has no file.", title="Cannot read the image")
    return payload.path


def _data_url_bytes(url: str) -> bytes:
    encoded = url.partition(",")[2]
    if len(encoded) * 3 // 4 > max_photo_bytes():  # bound the work before decoding base64
        cap = max_photo_bytes() / 2**20
        raise gr.Error(f"The image is more than the cap of {cap:g} MB.", title="Cannot read the image")
    try:
        return base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError):
        raise gr.Error("The image data is not valid base64.", title="Cannot read the image") from None


def display_name(source: str | bytes) -> str:
    """The name a message may show: the uploaded file's own name, never the server's folder."""
    return Path(source).name if isinstance(source, str) else "the frame"


def check_video_file(path: str) -> None:
    """Refuse a video file above the size cap before anything reads it."""
    size = Path(path).stat().st_size
    if size > max_video_bytes():
        raise InvalidImageError(
            f"{display_name(path)} is {size / 2**20:.1f} MB, more than the video cap of "
            f"{max_video_bytes() / 2**20:g} MB"
        )
