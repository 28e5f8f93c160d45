"""The leaderboard's refusals, each one line that says what was refused and why (every floor raises them)."""

from __future__ import annotations

from fsanet.errors import FSANetError

MAX_MESSAGE = 300


class SubmissionError(FSANetError):
    """A submission was rejected; the message (one line) says why."""

    def __init__(self, message: str):
        line = " ".join(str(message).split())
        super().__init__(line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "...")
