"""Fair use of the inference workers: no client holds more than its share, big files wait in their own lane.

Every request passes :meth:`Admission.admit` once its file's header has been read (so its pixel count is
known and nothing is decoded yet), under its client's key (:func:`space.clients.client_key`: the Hugging
Face login, else a keyed hash of the client's address; never the session id, which a client chooses):

* a client may have ``per_client`` requests in flight, however many sessions or tabs it opens; one more
  is refused at once with a message instead of taking a worker;
* requests over ``heavy_pixels`` (and videos) run one at a time in the heavy lane, at most one per client,
  with at most ``heavy_queue`` more waiting: past that a large file is refused at once. So a crowd of huge
  uploads never holds more than a handful of Gradio's workers, and a normal photo sent meanwhile finds a
  worker and a slot of the light lane (``light_slots`` at once).

Environment variables: ``SPACE_CONCURRENCY`` (light lane, default 2), ``SPACE_HEAVY_MP`` (megapixels above
which a photo is heavy, default 16), ``SPACE_HEAVY_QUEUE`` (large files waiting, default 4),
``SPACE_CLIENT_REQUESTS`` (in flight per client, default 4).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator

from space.settings import client_requests, concurrency, heavy_pixels, heavy_queue


class Busy(Exception):
    """The client already has its share of requests in flight, or the heavy lane is full."""


class Admission:
    """Per-client in-flight limit and two lanes (light, heavy) chosen by pixel count."""

    def __init__(
        self,
        light_slots: int,
        heavy_pixels: int,
        per_client: int,
        heavy_queue: int,
        heavy_slots: int = 1,
    ):
        self.heavy_pixels = heavy_pixels
        self.per_client = per_client
        self.heavy_places = heavy_slots + heavy_queue  # running or waiting
        self._light = threading.BoundedSemaphore(light_slots)
        self._heavy = threading.BoundedSemaphore(heavy_slots)
        self._in_flight: Counter[str] = Counter()
        self._heavy_by: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def admit(self, client: str, pixels: int) -> Iterator[None]:
        """Hold a slot of the right lane in the ``with`` block; :class:`Busy` when the client is at its cap
        or the heavy lane has no place left."""
        heavy = pixels > self.heavy_pixels
        with self._lock:
            self._check(client, heavy)
            self._in_flight[client] += 1
            if heavy:
                self._heavy_by[client] += 1
        try:
            with self._heavy if heavy else self._light:
                yield
        finally:
            with self._lock:
                for counter in (self._in_flight, self._heavy_by) if heavy else (self._in_flight,):
                    counter[client] -= 1
                    if not counter[client]:
                        del counter[client]

    def _check(self, client: str, heavy: bool) -> None:
        if self._in_flight[client] >= self.per_client:
            raise Busy(
                f"you already have {self.per_client} requests running: wait for them to finish, "
                "then send this one again"
            )
        refusal = self._heavy_refusal(client) if heavy else None
        if refusal is not None:
            raise Busy(refusal)

    def heavy_refusal(self, client: str) -> str | None:
        """Why a large photo or video of ``client`` would be refused now, or None when it has a place."""
        with self._lock:
            return self._heavy_refusal(client)

    def _heavy_refusal(self, client: str) -> str | None:
        if self._heavy_by[client]:
            return (
                "you already have a large photo or a video being processed: wait for it to finish, "
                "then send this one again"
            )
        if self._heavy_by.total() >= self.heavy_places:
            return (
                "the Space is busy with other large photos and videos: send this one again in a minute, "
                f"or a photo of at most {self.heavy_pixels / 1e6:g} megapixels (it does not wait)"
            )
        return None


VIDEO = 2**62  # a video's "pixel count": always the heavy lane

admission = Admission(
    light_slots=concurrency(),
    heavy_pixels=heavy_pixels(),
    per_client=client_requests(),
    heavy_queue=heavy_queue(),
)
