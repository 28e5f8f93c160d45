"""Every environment variable of the Space, read here and nowhere else (the README's table names them).

* ``SPACE_MAX_PHOTO_MB`` (20), ``SPACE_MAX_VIDEO_MB`` (50), ``SPACE_MAX_VIDEO_S`` (20): upload caps;
  ``SPACE_MAX_UPLOAD_MB``: Gradio's cap on any upload (default: the largest cap, submissions included).
* ``SPACE_CONCURRENCY`` (2): requests of the light lane at once; ``SPACE_HEAVY_MP`` (16): megapixels
  above which a photo waits in the heavy lane; ``SPACE_SESSION_REQUESTS`` (2): one session's requests
  in flight.

The library's (``FSANET_*``) and the leaderboard's (``LEADERBOARD_*``) are read by their own settings modules.
"""

from __future__ import annotations

import os

MB = 2**20


def _number(variable: str, default: float) -> float:
    return float(os.environ.get(variable) or default)


def max_photo_bytes() -> int:
    return int(_number("SPACE_MAX_PHOTO_MB", 20) * MB)


def max_video_bytes() -> int:
    return int(_number("SPACE_MAX_VIDEO_MB", 50) * MB)


def max_video_seconds() -> float:
    return _number("SPACE_MAX_VIDEO_S", 20)


def max_upload_bytes_setting() -> int | None:
    """``SPACE_MAX_UPLOAD_MB`` when set (else the caller takes the largest cap)."""
    return int(_number("SPACE_MAX_UPLOAD_MB", 0) * MB) if os.environ.get("SPACE_MAX_UPLOAD_MB") else None


def concurrency() -> int:
    return int(_number("SPACE_CONCURRENCY", 2))


def heavy_pixels() -> int:
    return int(_number("SPACE_HEAVY_MP", 16) * 1_000_000)


def session_requests() -> int:
    return int(_number("SPACE_SESSION_REQUESTS", 2))
