"""The request store: typed submission requests and their files in a backend, and what anyone may read.

A request is ``requests/<id>.json`` in the store (:mod:`.backends`) and its validated files are
``submissions/<id>/{config.json, model.safetensors}``, created together or not at all, so a worker anywhere
evaluates exactly what was validated. Every file is validated once, when it is read, into a :class:`Request`;
a file that is not one is listed once and skipped. Life cycle: ``pending -> running (lease, progress) ->
finished | failed (reason)``; every attempt is logged in ``attempts``.

The id is the model's identity key (:attr:`fsanet.models.registry.ModelIdentity.key`); a request holding that
id with another full identity is never replaced (:meth:`RequestStore.add` returns it). :meth:`Request.public`
is what others may read: no submitter, no worker host or process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fsanet.models.registry import ModelIdentity

from .backends import Backend, open_backend

STATUSES = ("pending", "running", "finished", "failed")
WAITING = ("pending", "running")  # what counts against a submitter's pending limit
ACTIVE = ("pending", "running", "finished")  # requests that hold their name (a failed one has no row)
ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,80}")
Outcome = Literal["finished", "failed", "lost", "rejected"]

Short = Annotated[str, Field(max_length=200)]
Reason = Annotated[str, Field(max_length=1000)]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def now(clock: Callable[[], datetime] | None = None) -> str:
    """A timestamp of ``clock()`` (default: the wall clock, UTC), as every request field stores it."""
    return (clock or (lambda: datetime.now(UTC)))().isoformat(timespec="milliseconds")


class _Record(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Identity(_Record):
    weights: Hex64
    config: Hex64


class Lease(_Record):
    worker: Short
    until: Short


class Attempt(_Record):
    worker: Short
    started: Short
    outcome: Outcome | None = None
    ended: Short | None = None
    reason: Reason | None = None
    retired: bool = False  # a retry starts a fresh budget: older attempts no longer count


class Scored(_Record):
    """One benchmark's result of a request: where the evaluation wrote it and what it scored."""

    benchmark: Short
    mae: float
    result: Short  # the result file's name
    sha256: Hex64  # of the result file and of its predictions, as the evaluation wrote them
    predictions_sha256: Hex64
    peak_rss_mb: float | None = None


class Request(_Record):
    """One submission request, as stored."""

    id: Annotated[str, Field(pattern=f"^{ID_PATTERN.pattern}$")]
    model_name: Annotated[str, Field(max_length=80)]
    status: Literal["pending", "running", "finished", "failed"]
    created: Short
    updated: Short | None = None
    identity: Identity | None = None
    submitter: Short = "unknown"
    source: Short = "upload"
    revision: Short | None = None
    architecture: Short | None = None
    trained_on: Short | None = None
    protocol: Short | None = None
    params: int | None = None
    bytes: int | None = None
    reason: Reason | None = None
    progress: Short | None = None
    lease: Lease | None = None
    attempts: Annotated[list[Attempt], Field(max_length=1000)] = Field(default_factory=list)
    results: Annotated[list[Scored], Field(max_length=100)] = Field(default_factory=list)
    equivalent_to: Short | None = None  # the row whose predictions this model's equal

    @property
    def model_identity(self) -> ModelIdentity | None:
        """The identity it was validated with (None for a record that does not say)."""
        return None if self.identity is None else ModelIdentity(self.identity.weights, self.identity.config)

    def live_attempts(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if not attempt.retired]

    def public(self) -> dict[str, Any]:
        """What anyone may read (the Space's queue, its "your submission", ``leaderboard requests``): no
        submitter, no worker (host, process id) in the lease or the attempts."""
        hidden = {"submitter", "lease", "attempts", "results"}
        data = self.model_dump(mode="json", exclude=hidden)
        data["attempts"] = [
            attempt.model_dump(mode="json", include={"started", "ended", "outcome", "reason"})
            for attempt in self.live_attempts()
        ]
        data["results"] = [
            result.model_dump(mode="json", include={"benchmark", "mae", "peak_rss_mb"})
            for result in self.results
        ]
        return data

    def encode(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True).encode()


def read_request(data: bytes | None) -> Request:
    """The request a file holds, or ValueError (one line) saying why it is none."""
    if data is None:
        raise ValueError("absent")
    try:
        return Request.model_validate(json.loads(data))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"not a request ({where + ': ' if where else ''}{first['msg'][:80]})") from None
    except (ValueError, RecursionError, UnicodeDecodeError) as error:
        raise ValueError(f"not JSON ({type(error).__name__})") from None


class RequestStore:
    """The requests in a store (default: ``REQUESTS_REPO`` if set, else ``LEADERBOARD_DIR``)."""

    def __init__(self, backend: Backend | None = None):
        self.backend = backend or open_backend()

    def list(self) -> tuple[list[Request], list[str]]:
        """Every request, oldest first, and one message per file in ``requests/`` that is not one."""
        files, problems = self.backend.list("requests")
        requests = []
        for name, data in files.items():
            try:
                if not name.endswith(".json"):
                    raise ValueError("not a .json file")
                request = read_request(data)
                if f"{request.id}.json" != name:
                    raise ValueError(f"holds request {request.id!r}")
                requests.append(request)
            except ValueError as error:
                problems.append(f"skipped requests/{name[:80]}: {str(error)[:120]}")
        return sorted(requests, key=lambda r: (r.created, r.id)), problems

    def get(self, request_id: str) -> Request:
        try:
            if not ID_PATTERN.fullmatch(request_id):
                raise ValueError(request_id)
            return read_request(self.backend.read(f"requests/{request_id}.json"))
        except ValueError:
            raise KeyError(f"no request {request_id[:80]!r}") from None

    def public_list(self) -> tuple[list[dict[str, Any]], list[str]]:
        """:meth:`list`, each request as anyone may read it (:meth:`Request.public`)."""
        requests, problems = self.list()
        return [request.public() for request in requests], problems

    def public_get(self, request_id: str) -> dict[str, Any]:
        """:meth:`get`, as anyone may read it (:meth:`Request.public`)."""
        return self.get(request_id).public()

    def update(self, request_id: str, change: Callable[[Request], Request | None]) -> Request | None:
        """Atomically apply ``change`` (None: leave it) to one request; returns the new request or None."""

        def apply(data: bytes | None) -> bytes | None:
            try:
                request = read_request(data)
            except ValueError:
                return None
            new = change(request)
            return None if new is None else new.model_copy(update={"updated": now()}).encode()

        written = self.backend.update(f"requests/{request_id}.json", apply, f"request {request_id}")
        return None if written is None else read_request(written)

    def add(
        self, request: Request, files: dict[str, bytes], check: Callable[[list[Request]], None]
    ) -> Request | None:
        """Store ``files`` (``submissions/<id>/``) and ``request`` together, all or nothing; returns None when
        stored, else the request that already holds its id (nothing stored).

        ``check(requests)`` runs inside the atomic write, on every request as the write finds them (under the
        lock; on the Hub at the commit's parent, again if the commit is refused), and raises to refuse it:
        what must hold under concurrent submissions (limits, unique names) is checked there."""
        created = self.backend.create(
            f"submissions/{request.id}",
            files,
            f"requests/{request.id}.json",
            request.encode(),
            f"submission {request.id}",
            lambda: check(self.list()[0]),
        )
        if created:
            return None
        try:
            return self.get(request.id)
        except KeyError:  # removed since: report the one we tried
            return request

    def fetch_submission(self, request_id: str, into: Path, max_bytes: int) -> Path:
        return self.backend.fetch(f"submissions/{request_id}", into, max_bytes)
