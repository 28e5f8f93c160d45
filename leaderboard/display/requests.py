"""A request said in one sentence, for people (the Space's "Your submission", ``leaderboard submit``,
``requests`` and ``retry``); machines read :meth:`~leaderboard.storage.requests.Request.public`."""

from __future__ import annotations

from typing import Any


def describe_request(request: dict[str, Any], position: int | None = None) -> str:
    """``request`` (as :meth:`~leaderboard.storage.requests.Request.public` gives it) in one sentence: its
    state and, pending, its ``position`` in the queue (1: next), running, its progress, finished, its
    scores, failed, the reason."""
    who = f"Request {request.get('id')} ({request.get('model_name')})"
    status = request.get("status")
    if status == "pending":
        if position is None:
            return f"{who} is pending."
        ahead = position - 1
        place = "next in the queue" if ahead == 0 else f"number {position} in the queue ({ahead} before it)"
        return f"{who} is pending: {place}."
    if status == "running":
        progress = request.get("progress")
        return f"{who} is being evaluated" + (f" ({progress})." if progress else ".")
    if status == "finished":
        scores = [r for r in request.get("results") or [] if isinstance(r, dict)]
        said = "; ".join(f"{r.get('benchmark')} MAE {r.get('mae', float('nan')):.2f}" for r in scores)
        return f"{who} is finished" + (f": {said}." if said else ".")
    return f"{who} failed: {request.get('reason') or 'no reason recorded'}."
