"""Fair use of the inference workers: no session holds more than its share, big images wait in their own lane.

Every request passes :meth:`Admission.admit` once its file's header has been read (so its pixel
count is known and nothing is decoded yet):

* a session (a browser tab or a ``gradio_client.Client``) may have ``per_session`` requests in
  flight; one more is refused at once with a message instead of taking a queue slot;
* requests over ``heavy_pixels`` (and videos) run one at a time in the heavy lane, the others in
  the light lane (``light_slots`` at once), so sixteen 64 MP uploads make each other wait, not a
  normal photo sent meanwhile.

Environment variables: ``SPACE_CONCURRENCY`` (light lane, default 2), ``SPACE_HEAVY_MP`` (megapixels
above which a photo is heavy, default 16), ``SPACE_SESSION_REQUESTS`` (in flight per session, default 2).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator

from space.settings import concurrency, heavy_pixels, session_requests


class Busy(Exception):
    """The session already has its share of requests in flight."""


class Admission:
    """Per-session in-flight limit and two lanes (light, heavy) chosen by pixel count."""

    def __init__(self, light_slots: int, heavy_pixels: int, per_session: int, heavy_slots: int = 1):
        self.heavy_pixels = heavy_pixels
        self.per_session = per_session
        self._light = threading.BoundedSemaphore(light_slots)
        self._heavy = threading.BoundedSemaphore(heavy_slots)
        self._in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def admit(self, session: str, pixels: int) -> Iterator[None]:
        """Hold a slot of the right lane in the ``with`` block; :class:`Busy` if the session is at its cap."""
        with self._lock:
            if self._in_flight[session] >= self.per_session:
                raise Busy(
                    f"you already have {self.per_session} requests running: wait for them to finish, "
                    "then send this one again"
                )
            self._in_flight[session] += 1
        try:
            with self._heavy if pixels > self.heavy_pixels else self._light:
                yield
        finally:
            with self._lock:
                self._in_flight[session] -= 1
                if not self._in_flight[session]:
                    del self._in_flight[session]


VIDEO = 2**62  # a video's "pixel count": always the heavy lane

admission = Admission(
    light_slots=concurrency(),
    heavy_pixels=heavy_pixels(),
    per_session=session_requests(),
)
