"""The worker: claims pending requests, evaluates each in an isolated child, records the outcome.

Any number of workers, on any machines sharing a store, agree through claims and leases:

* a worker claims a request with one atomic update of its record (:meth:`Backend.update`: a lock on disk,
  a ``parent_commit`` on the Hub) that only succeeds on a ``pending`` request or on a ``running`` one whose
  lease has expired; the claim writes the worker's id, the lease's end and a new entry in ``attempts``;
* while the child evaluates, the worker renews the lease (the same atomic update, refused when the record no
  longer names this worker and attempt: the child is then killed and its work dropped);
* a worker killed with ``kill -9`` stops renewing, its lease expires, and the next worker to look takes the
  request over (that lost attempt is logged);
* the children write into a staging folder beside the board, moved onto it only when every benchmark
  succeeded and the claim is still held: a failed, aborted or taken-over attempt leaves no row;
* an attempt that fails (crash, out of memory, timeout) sends the request back to ``pending``; after
  ``LEADERBOARD_MAX_ATTEMPTS`` failures it is ``failed`` with the last reason, and the queue moves on.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..protocol.benchmarks import looked_in
from ..protocol.data import present_benchmarks
from ..settings import (
    eval_memory_bytes,
    eval_timeout_seconds,
    lease_seconds,
    max_attempts,
    poll_seconds,
)
from ..submission.limits import fair_order
from ..submission.requests import RequestQueue, identity_of, now
from .isolation import evaluate_isolated
from .store import ResultsStore

log = logging.getLogger(__name__)

# A staging folder untouched for this many leases belongs to a dead worker (a live one touches it at every
# renewal, three times a lease): the next worker removes it.
STALE_STAGING_LEASES = 10


def _expired(record: dict[str, Any], at: datetime) -> bool:
    lease = record.get("lease")
    try:
        return datetime.fromisoformat(lease["until"]) < at
    except (TypeError, KeyError, ValueError):
        return True  # a running request without a readable lease belongs to nobody


def _live_attempts(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in record["attempts"] if isinstance(a, dict) and not a.get("retired")]


@dataclass
class Worker:
    """One worker: its id (host, pid, random part) and the stores it reads and writes."""

    queue: RequestQueue = field(default_factory=RequestQueue)
    results: ResultsStore = field(default_factory=ResultsStore)
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
    lease_s: float = field(default_factory=lease_seconds)
    seen_problems: set[str] = field(default_factory=set)

    # ------------------------------------------------------------------------------------ claiming
    def _claimable(self, record: dict[str, Any], at: datetime) -> bool:
        return record["status"] == "pending" or (record["status"] == "running" and _expired(record, at))

    def _claim(self, record: dict[str, Any]) -> dict[str, Any] | None:
        at = datetime.now(UTC)
        if not self._claimable(record, at):
            return None
        attempts = record["attempts"]
        if record["status"] == "running":  # its worker stopped renewing: died, or lost the store
            for attempt in _live_attempts(record):
                if attempt.get("outcome") is None:
                    attempt.update(outcome="lost", ended=now(), reason="worker stopped renewing its lease")
        failed = [a for a in _live_attempts(record) if a.get("outcome") in ("failed", "lost")]
        if len(failed) >= max_attempts():
            return {**record, "status": "failed", "lease": None, "reason": failed[-1].get("reason")}
        attempts.append({"worker": self.worker_id, "started": now(), "outcome": None})
        until = (at + timedelta(seconds=self.lease_s)).isoformat()
        return {
            **record,
            "status": "running",
            "lease": {"worker": self.worker_id, "until": until},
            "reason": None,
        }

    def _mine(self, record: dict[str, Any]) -> bool:
        attempts = record["attempts"]
        return (
            record["status"] == "running"
            and (record.get("lease") or {}).get("worker") == self.worker_id
            and bool(attempts)
            and attempts[-1].get("worker") == self.worker_id
        )

    def claimable(self) -> list[dict[str, Any]]:
        """The requests this worker could claim now, round-robin across submitters, each one's oldest first
        (:func:`~leaderboard.submission.limits.fair_order`; bad store files are listed once)."""
        requests, problems = self.queue.list()
        for message in problems:
            if message not in self.seen_problems:  # listed once, not at every poll
                self.seen_problems.add(message)
                log.warning(message)
        at = datetime.now(UTC)
        candidates = [record for record in requests if self._claimable(record, at)]
        held = [record for record in requests if record["status"] == "running" and record not in candidates]
        return fair_order(candidates, held)

    def claim_next(self, candidates: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
        """Claim the first of ``candidates`` (default: :meth:`claimable`) it can; None when none is won."""
        for record in self.claimable() if candidates is None else candidates:
            claimed = self.queue.update(record["id"], self._claim)
            if claimed is not None and self._mine(claimed):
                return claimed
        return None

    def renew(self, request_id: str, progress: str | None = None) -> bool:
        """Extend this worker's lease; False when the request is no longer ours."""

        def extend(record: dict[str, Any]) -> dict[str, Any] | None:
            if not self._mine(record):
                return None
            until = (datetime.now(UTC) + timedelta(seconds=self.lease_s)).isoformat()
            return {**record, "lease": {"worker": self.worker_id, "until": until}, "progress": progress}

        return self.queue.update(request_id, extend) is not None

    def _close(
        self, request_id: str, outcome: str, reason: str | None, results: list[dict[str, Any]]
    ) -> bool:
        """Record the attempt: ``finished``, ``failed`` (retried up to the cap) or ``rejected`` (final)."""

        def close(record: dict[str, Any]) -> dict[str, Any] | None:
            if not self._mine(record):
                return None
            record["attempts"][-1].update(outcome=outcome, ended=now(), reason=reason)
            failures = [a for a in _live_attempts(record) if a.get("outcome") in ("failed", "lost")]
            if outcome == "finished":
                status = "finished"
            else:
                retry = outcome == "failed" and len(failures) < max_attempts()
                status = "pending" if retry else "failed"
            return {
                **record,
                "status": status,
                "lease": None,
                "reason": reason,
                "progress": None,
                "results": results,
            }

        return self.queue.update(request_id, close) is not None

    # ---------------------------------------------------------------------------------- evaluating
    def process(self, record: dict[str, Any], benchmarks: list[str]) -> dict[str, Any]:
        """Evaluate a claimed request on ``benchmarks`` (in one child); returns its final record.

        The child writes into a staging folder; its results reach the board (and the Hub mirror) only once
        every benchmark succeeded, no row of the same model appeared meanwhile, and the claim is still this
        worker's, else they are dropped with it. An invalid stored submission is rejected for good.
        """
        request_id = record["id"]
        duplicate = self._duplicate(record)
        if duplicate is not None:
            self._close(request_id, "rejected", f"rejected: {duplicate}", [])
            return self.queue.get(request_id)
        renew_every = self.lease_s / 3
        last_renewal = time.monotonic()
        results, published, reason, rejected = [], [], None, False
        stale_after_s = STALE_STAGING_LEASES * self.lease_s
        with (
            tempfile.TemporaryDirectory(prefix="leaderboard-submission-") as tmp,
            self.results.staging(stale_after_s) as staging,
        ):

            def renew(progress: str) -> bool:
                nonlocal last_renewal
                last_renewal = time.monotonic()
                if not self.renew(request_id, progress):
                    return False
                os.utime(staging)  # in use: younger than the age at which other workers remove it
                return True

            def tick(progress: str) -> bool:
                return time.monotonic() - last_renewal < renew_every or renew(progress)

            try:
                folder = self.queue.fetch_submission(request_id, Path(tmp))
            except (OSError, ValueError) as error:
                folder, reason, rejected = None, f"rejected: the stored submission: {error}", True
            if folder is not None and not renew(f"{benchmarks[0]} (1/{len(benchmarks)})"):
                reason = "lost the claim"
            if reason is None:
                outcome = evaluate_isolated(
                    folder,
                    record,
                    benchmarks,
                    self.results.root,
                    staging,
                    eval_memory_bytes(),
                    eval_timeout_seconds(),
                    tick=tick,
                )
                reason, rejected = outcome.reason, outcome.rejected
                results = [
                    {**summary, "peak_rss_mb": outcome.peak_rss_mb} for summary in outcome.summaries or []
                ]
            # Only the claim's holder publishes (one result per request); the fresh lease covers the moves.
            if reason is None and not renew("publishing"):
                reason = "lost the claim"
            if reason is None and (duplicate := self._duplicate(record)) is not None:
                reason, rejected = f"rejected: {duplicate}", True
            if reason is None:
                try:
                    published = self.results.move_in(staging, results)
                except (OSError, ValueError) as error:
                    reason = f"could not publish the results: {error}"
        for path in published:  # moved onto the board: the request succeeded
            self.results.publish(path)
        outcome_name = "finished" if reason is None else "rejected" if rejected else "failed"
        # A failed attempt's scores name rows that never reached the board.
        closed = self._close(request_id, outcome_name, reason, results if reason is None else [])
        if not closed:
            log.warning("request %s was taken over by another worker; dropped this attempt", request_id)
        return self.queue.get(request_id)

    def _duplicate(self, record: dict[str, Any]) -> str | None:
        """Why ``record`` must not be scored: a row of the same weights and config is already on the board."""
        identity = identity_of(record)
        if identity is None:
            return "the request does not say which model it is (no identity)"
        rows = self.results.find(identity)
        if rows:
            config = rows[0]["config"]
            row = f"the {config['namespace']} row {config['model_name']!r}"
            return f"the same weights and config are already on the board as {row}"
        return None

    def run(
        self,
        watch: bool = False,
        limit: int | None = None,
        poll_s: float | None = None,
        stop: threading.Event | None = None,
    ) -> list[dict[str, Any]]:
        """Drain the queue (``watch``: then poll until ``stop`` is set); returns the processed requests.

        A watching worker outlives store errors (the Hub away, a full disk): it logs them and polls again.
        """
        poll_s = poll_seconds() if poll_s is None else poll_s
        stop = stop or threading.Event()
        processed: list[dict[str, Any]] = []
        warned = False
        while not stop.is_set() and (limit is None or len(processed) < limit):
            candidates, benchmarks = [], []
            try:
                candidates = self.claimable()
                # Loading the datasets is costly: only when there is something to evaluate.
                benchmarks = present_benchmarks(self.results.root) if candidates else []
                claimed = self.claim_next(candidates) if benchmarks else None
                if claimed is not None:
                    processed.append(self.process(claimed, benchmarks))
                    continue
            except Exception:
                if not watch:
                    raise
                log.exception("worker: store error; polling again in %g s", poll_s)
            if candidates and not benchmarks and not warned:
                log.warning(
                    "no benchmark data (looked in %s): requests stay pending", looked_in(self.results.root)
                )
                warned = True
            if not watch:
                break
            stop.wait(poll_s)
        return processed


def run_worker(
    watch: bool = False,
    limit: int | None = None,
    poll_s: float | None = None,
    stop: threading.Event | None = None,
) -> list[dict[str, Any]]:
    """A worker on the configured store (``REQUESTS_REPO`` + ``RESULTS_REPO``, else ``LEADERBOARD_DIR``)."""
    return Worker().run(watch=watch, limit=limit, poll_s=poll_s, stop=stop)


def start_background_worker(poll_s: float | None = None) -> tuple[threading.Thread, threading.Event]:
    """The Space's worker: a daemon thread watching the store (evaluations still run in child processes)."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker, kwargs={"watch": True, "poll_s": poll_s, "stop": stop}, name="leaderboard-worker"
    )
    thread.daemon = True
    thread.start()
    return thread, stop
