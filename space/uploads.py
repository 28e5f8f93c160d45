"""Uploads checked by the project, never decoded by Gradio, and the caps on them.

:func:`uploaded_image` looks and behaves like ``gr.Image`` in the browser and the API, but hands
the uploaded file over untouched: Gradio's own ``gr.Image`` decodes every upload with Pillow
before the app sees it (a 13000² PNG costs 400 MB before any cap applies, a 16-bit PNG comes out
white, a truncated PNG comes out black, a broken file gives Gradio's message with a server path).
Here :mod:`fsanet.data.imageio` reads the header first and decodes only what passes its caps, so
the Space and ``python -m fsanet predict`` agree on every file.

Gradio takes every file through one route (``/gradio_api/upload``) before any event sees it, and keeps it
for an hour. :class:`UploadBound` guards that route by what the sender can use a file for: the photo and
video inputs' caps, plus the submission cap (``LEADERBOARD_MAX_SUBMISSION_MB``) only for a sender who may
submit (anyone off a Space; a logged-in user on one), refused from the request's ``Content-Length`` before
any byte is read; a client (:func:`space.clients.client_key`) has at most ``SPACE_CLIENT_REQUESTS``
uploads under way at once; and while the heavy lane of :mod:`space.fairness` would refuse the client's
next large photo, an upload's first bytes are read first and a photo above ``SPACE_HEAVY_MP`` is refused
from its header, with the lane's own message, instead of after the rest (a flood of huge photos from many
addresses then costs the Space their headers, not their megabytes).

Environment variables (sizes in MB of 2**20 bytes):

* ``SPACE_MAX_PHOTO_MB``: largest photo or webcam frame (default 20);
* ``SPACE_MAX_VIDEO_MB``, ``SPACE_MAX_VIDEO_S``: largest video and its longest duration (default 50, 20).
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter, deque
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fsanet import InvalidImageError
from fsanet.data.imageio import header_size
from leaderboard.settings import max_submission_bytes
from space.clients import client_key, may_submit
from space.fairness import admission
from space.settings import MB, client_requests, max_photo_bytes, max_video_bytes

# Webcam frames: a 1280x720 frame is ~1 MP; a bigger "frame" is an API caller's photo in disguise.
MAX_FRAME_PIXELS = 4_000_000
# Video frames are processed one by one: above Full HD a short clip is already minutes of work.
MAX_VIDEO_FRAME_PIXELS = 1920 * 1088


UPLOAD_PATH = "/gradio_api/upload"
PEEK_BYTES = 128 * 1024  # holds a JPEG's size behind its EXIF block (at most 64 kB)
MULTIPART_SLACK = 64 * 1024  # a form's boundaries and part headers around the file


def media_bytes() -> int:
    """The largest file the photo and video inputs accept."""
    return max(max_photo_bytes(), max_video_bytes())


def max_upload_bytes() -> int:
    """Gradio's own cap on any upload: the largest file anyone may send (a submission's, when larger)."""
    return max(media_bytes(), max_submission_bytes())


def upload_bytes(request: Any) -> int:
    """The largest upload the sender of ``request`` can use: a submission's files only if it may submit."""
    return max_upload_bytes() if may_submit(request) else media_bytes()


class UploadBound:
    """ASGI middleware (inside Gradio's session middleware) guarding the upload route, see the docstring."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.uploading: Counter[str] = Counter()  # one event loop: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith(UPLOAD_PATH):
            return await self.app(scope, receive, send)
        request = Request(scope)
        client = client_key(request)
        refusal = self._refusal(request, client)
        if refusal is not None:
            return await refusal(scope, receive, send)
        self.uploading[client] += 1
        try:
            if admission.heavy_refusal(client) is not None:  # only then is a photo's header worth a look
                receive, refusal = await _peek(receive, client)
                if refusal is not None:
                    return await refusal(scope, receive, send)
            await self.app(scope, receive, send)
        finally:
            self.uploading[client] -= 1
            if not self.uploading[client]:
                del self.uploading[client]

    def _refusal(self, request: Request, client: str) -> PlainTextResponse | None:
        length = request.headers.get("content-length", "")
        if not length.isdigit():
            return _refused("Uploads must state their size (Content-Length).", 411)
        cap = upload_bytes(request)
        if int(length) > cap + MULTIPART_SLACK:
            words = f"The file is {int(length) / MB:.1f} MB, more than the {cap / MB:g} MB this Space accepts"
            if cap < max_upload_bytes():
                words += " for photos and videos (a submission may be larger: log in on the Submit tab)"
            return _refused(words + ".", 413)
        if self.uploading[client] >= client_requests():
            busy = f"You already have {client_requests()} uploads under way: wait for them to finish."
            return _refused(busy, 429)
        return None


async def _peek(receive: Receive, client: str) -> tuple[Receive, PlainTextResponse | None]:
    """Read the start of an upload: a photo the heavy lane has no place for now (it would be refused once
    uploaded) is refused from its header, before the rest of it is read. Returns the ``receive`` that
    replays what was read, and the refusal, if any."""
    read: deque[Message] = deque()
    head = b""
    while len(head) < PEEK_BYTES:
        message = await receive()
        read.append(message)
        head += message.get("body", b"")
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    refusal = None
    if _photo_pixels(head) > admission.heavy_pixels:
        reason = admission.heavy_refusal(client)
        refusal = _refused(f"{reason[0].upper()}{reason[1:]}.", 503) if reason else None

    async def replay() -> Message:
        return read.popleft() if read else await receive()

    return replay, refusal


def _photo_pixels(head: bytes) -> int:
    """The pixel count in the header of the first file of a multipart body's start (0: not a photo's)."""
    size = header_size(head[head.find(b"\r\n\r\n") + 4 :])  # after the first part's headers
    return size[0] * size[1] if size else 0


def _refused(message: str, status: int) -> PlainTextResponse:
    # "Connection: close": the server stops reading the body it refused (kept alive, it reads it all first).
    return PlainTextResponse(message, status_code=status, headers={"Connection": "close"})


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
