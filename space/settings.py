"""Every environment variable of the Space, read here and nowhere else (the README's table names them).

* ``SPACE_MAX_PHOTO_MB`` (20), ``SPACE_MAX_VIDEO_MB`` (50), ``SPACE_MAX_VIDEO_S`` (20): what the photo and
  video inputs accept; an upload larger than both is refused unless its sender may submit to the board.
* ``SPACE_CONCURRENCY`` (2): requests of the light lane at once; ``SPACE_HEAVY_MP`` (16): megapixels
  above which a photo waits in the heavy lane; ``SPACE_HEAVY_QUEUE`` (4): large photos and videos waiting
  for it; ``SPACE_CLIENT_REQUESTS`` (4): one client's requests in flight (and its uploads at once).
* ``SPACE_PROXY_HOPS``: proxies in front of the app that append the client's address to ``X-Forwarded-For``
  (default 1 on a Space, Hugging Face's; 0 elsewhere: the socket's peer is the client).
* ``SPACE_CLIENT_SECRET``: the key of the HMAC that stands for a client's address (default: random per
  process, so addresses are never stored in a form anyone can reverse).
* Set by Hugging Face: ``SYSTEM`` (``spaces``) with ``SPACE_ID`` on a Space, and ``OAUTH_CLIENT_ID`` when its
  README's front matter says ``hf_oauth: true`` (the login that submissions need there).

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


def concurrency() -> int:
    return int(_number("SPACE_CONCURRENCY", 2))


def heavy_pixels() -> int:
    return int(_number("SPACE_HEAVY_MP", 16) * 1_000_000)


def heavy_queue() -> int:
    return int(_number("SPACE_HEAVY_QUEUE", 4))


def client_requests() -> int:
    return int(_number("SPACE_CLIENT_REQUESTS", 4))


def space_id() -> str | None:
    """The Space's ``owner/name`` when running on Hugging Face Spaces (as Gradio decides it), else None."""
    return os.environ.get("SPACE_ID") if os.environ.get("SYSTEM") == "spaces" else None


def oauth_enabled() -> bool:
    """Hugging Face set up the Space's login (``hf_oauth: true`` in the README's front matter)."""
    return bool(os.environ.get("OAUTH_CLIENT_ID"))


def proxy_hops() -> int:
    default = 1 if space_id() else 0
    return int(_number("SPACE_PROXY_HOPS", default))


def client_secret() -> str | None:
    return os.environ.get("SPACE_CLIENT_SECRET") or None
