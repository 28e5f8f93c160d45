"""Fairness between submitters: a flood delays only its sender.

Two limits per submitter, both counted on the requests themselves (one fact: a request exists exactly when a
submission passed validation, so junk uses up nobody's quota):

* ``LEADERBOARD_MAX_PENDING`` requests waiting or running at once (default 3);
* ``LEADERBOARD_SUBMISSIONS_PER_HOUR`` requests created in any hour (default 10).

:func:`check_limits` runs before a submission costs anything (before a download or a validation) and again
inside the store's atomic write of the request (:meth:`~leaderboard.storage.requests.RequestStore.add`), so
parallel submissions cannot pass it together. The worker then takes requests round-robin across submitters
(:func:`fair_order`). A submitter is a string the caller vouches for (the Space's logged-in user, the CLI's
user); nothing others can read carries it (:meth:`~leaderboard.storage.requests.Request.public`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from ..errors import SubmissionError
from ..settings import max_pending, submissions_per_hour
from ..storage.requests import WAITING, Request

WINDOW = timedelta(hours=1)


def _created(request: Request) -> datetime | None:
    try:
        created = datetime.fromisoformat(request.created)
    except ValueError:
        return None
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def check_limits(requests: Sequence[Request], submitter: str, at: datetime | None = None) -> None:
    """Refuse ``submitter`` when ``requests`` already hold their limit of requests waiting or running, or of
    requests created in the hour before ``at`` (default now)."""
    mine = [r for r in requests if r.submitter == submitter]
    waiting = [r for r in mine if r.status in WAITING]
    if len(waiting) >= max_pending():
        raise SubmissionError(
            f"you have {len(waiting)} requests waiting or running (at most {max_pending()}): submit again "
            f"when one has finished (e.g. {waiting[0].id})"
        )
    at = at or datetime.now(UTC)
    recent = sorted(c for r in mine if (c := _created(r)) is not None and c > at - WINDOW)
    if len(recent) >= submissions_per_hour():
        minutes = max(1, round((recent[0] + WINDOW - at).total_seconds() / 60))
        raise SubmissionError(
            f"{len(recent)} submissions in the last hour (at most {submissions_per_hour()}): "
            f"try again in {minutes} min"
        )


def fair_order(candidates: Sequence[Request], running: Sequence[Request]) -> list[Request]:
    """``candidates`` round-robin across submitters: each submitter's oldest first, a submitter whose
    requests are ``running`` (held by a live worker) served after those without, ties broken by age."""
    busy = Counter(r.submitter for r in running)
    rounds: Counter[str] = Counter()
    ranked = []
    for request in sorted(candidates, key=lambda r: (r.created, r.id)):
        ranked.append(
            (busy[request.submitter] + rounds[request.submitter], request.created, request.id, request)
        )
        rounds[request.submitter] += 1
    return [request for *_, request in sorted(ranked, key=lambda item: item[:3])]


def queue_positions(requests: Sequence[Request]) -> dict[str, int]:
    """``{request id: its place}`` of every pending request in the order the workers take them
    (:func:`fair_order`; 1: next), for the sentences that tell a submitter where their request stands."""
    pending = [request for request in requests if request.status == "pending"]
    running = [request for request in requests if request.status == "running"]
    return {request.id: place for place, request in enumerate(fair_order(pending, running), start=1)}
