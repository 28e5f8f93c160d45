"""Fairness between submitters: a flood delays only its sender.

Two limits per submitter, checked before a submission is even validated (so a flood costs no CPU):

* ``LEADERBOARD_MAX_PENDING`` requests waiting or running at once (default 3);
* ``LEADERBOARD_SUBMISSIONS_PER_HOUR`` submissions in any hour (default 10), counted in the store
  (``submitters/<hash>.json``, one atomic update per submission, so any number of Spaces share the count).

The worker then takes requests round-robin across submitters (:func:`fair_order`). A submitter is a
string the caller vouches for: the Space's logged-in user or its client address, the CLI's user; the store
keeps only a hash of it in file names.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..service.backends import Backend
from ..settings import max_pending, submissions_per_hour
from .validation import SubmissionError

WINDOW = timedelta(hours=1)
WAITING = ("pending", "running")


def submitter_of(request: dict[str, Any]) -> str:
    return str(request.get("submitter") or "unknown")


def check_pending(requests: Sequence[dict[str, Any]], submitter: str) -> None:
    """Refuse a submitter who already has ``LEADERBOARD_MAX_PENDING`` requests waiting or running."""
    waiting = [r for r in requests if submitter_of(r) == submitter and r["status"] in WAITING]
    if len(waiting) >= max_pending():
        raise SubmissionError(
            f"you have {len(waiting)} requests waiting or running (at most {max_pending()}): submit again "
            f"when one has finished (e.g. {waiting[0]['id']})"
        )


def take_hourly_slot(backend: Backend, submitter: str, at: datetime | None = None) -> None:
    """Count one submission for ``submitter``, or refuse it when the last hour already holds the limit."""
    at = at or datetime.now(UTC)
    digest = hashlib.sha256(submitter.encode()).hexdigest()[:24]

    def count(old: bytes | None) -> bytes:
        try:
            stamps = [datetime.fromisoformat(s) for s in json.loads(old or b"[]")]
        except (ValueError, TypeError):
            stamps = []  # an unreadable counter restarts empty
        recent = sorted(s for s in stamps if s > at - WINDOW)
        if len(recent) >= submissions_per_hour():
            minutes = max(1, round((recent[0] + WINDOW - at).total_seconds() / 60))
            raise SubmissionError(
                f"{len(recent)} submissions in the last hour (at most {submissions_per_hour()}): "
                f"try again in {minutes} min"
            )
        return json.dumps([s.isoformat() for s in [*recent, at]]).encode()

    backend.update(f"submitters/{digest}.json", count, "submission counted")


def fair_order(
    candidates: Sequence[dict[str, Any]], running: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``candidates`` round-robin across submitters: each submitter's oldest first, a submitter whose
    requests are ``running`` (held by a live worker) served after those without, ties broken by age."""
    busy = Counter(submitter_of(r) for r in running)
    rounds: Counter[str] = Counter()
    ranked = []
    for request in sorted(candidates, key=lambda r: (r["created"], r["id"])):
        who = submitter_of(request)
        ranked.append((busy[who] + rounds[who], request["created"], request["id"], request))
        rounds[who] += 1
    return [request for *_, request in sorted(ranked, key=lambda item: item[:3])]
