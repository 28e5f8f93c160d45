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
  succeeded, no row of the same model or of equal predictions (:mod:`.equivalence`) is on the board, and the
  claim is still held: a failed, aborted, equivalent or taken-over attempt leaves no row;
* an attempt that fails (crash, out of memory, timeout) sends the request back to ``pending``; after
  ``LEADERBOARD_MAX_ATTEMPTS`` failures it is ``failed`` with the last reason, and the queue moves on.

Leases are read against the worker's ``clock`` (the wall clock, UTC; tests give it another).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..protocol.benchmarks import looked_in
from ..protocol.loading import present_benchmarks
from ..settings import (
    eval_memory_bytes,
    eval_timeout_seconds,
    lease_seconds,
    max_attempts,
    max_submission_bytes,
    poll_seconds,
)
from ..storage.requests import Attempt, Lease, Request, RequestStore, Scored, now
from ..storage.results import ResultsStore
from ..storage.rows import read_row
from .equivalence import equivalence_reason, equivalent_row
from .isolation import evaluate_isolated
from .limits import fair_order

log = logging.getLogger(__name__)

# A staging folder untouched for this many leases belongs to a dead worker (a live one touches it at every
# renewal, three times a lease): the next worker removes it.
STALE_STAGING_LEASES = 10
Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


def _failures(attempts: list[Attempt]) -> list[Attempt]:
    """The attempts that count against a request's budget: failed or lost, since its last retry."""
    return [attempt for attempt in attempts if not attempt.retired and attempt.outcome in ("failed", "lost")]


def _expired(request: Request, at: datetime) -> bool:
    try:
        return request.lease is None or datetime.fromisoformat(request.lease.until) < at
    except ValueError:
        return True  # a running request without a readable lease belongs to nobody


@dataclass
class Worker:
    """One worker: its id (host, pid, random part), the stores it reads and writes, and its clock."""

    queue: RequestStore = field(default_factory=RequestStore)
    results: ResultsStore = field(default_factory=ResultsStore)
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
    lease_s: float = field(default_factory=lease_seconds)
    clock: Clock = wall_clock
    seen_problems: set[str] = field(default_factory=set)

    # ------------------------------------------------------------------------------------ claiming
    def _claimable(self, request: Request, at: datetime) -> bool:
        return request.status == "pending" or (request.status == "running" and _expired(request, at))

    def _lease(self) -> Lease:
        return Lease(
            worker=self.worker_id, until=(self.clock() + timedelta(seconds=self.lease_s)).isoformat()
        )

    def _claim(self, request: Request) -> Request | None:
        if not self._claimable(request, self.clock()):
            return None
        attempts = list(request.attempts)
        if request.status == "running":  # its worker stopped renewing: died, or lost the store
            attempts = [
                a.model_copy(
                    update={
                        "outcome": "lost",
                        "ended": now(self.clock),
                        "reason": "worker stopped renewing its lease",
                    }
                )
                if not a.retired and a.outcome is None
                else a
                for a in attempts
            ]
        failed = _failures(attempts)
        if len(failed) >= max_attempts():
            return request.model_copy(
                update={"status": "failed", "lease": None, "reason": failed[-1].reason, "attempts": attempts}
            )
        attempts.append(Attempt(worker=self.worker_id, started=now(self.clock)))
        return request.model_copy(
            update={"status": "running", "lease": self._lease(), "reason": None, "attempts": attempts}
        )

    def _mine(self, request: Request) -> bool:
        return (
            request.status == "running"
            and request.lease is not None
            and request.lease.worker == self.worker_id
            and bool(request.attempts)
            and request.attempts[-1].worker == self.worker_id
        )

    def claimable(self) -> list[Request]:
        """The requests this worker could claim now, round-robin across submitters, each one's oldest first
        (:func:`~.limits.fair_order`; bad store files are listed once)."""
        requests, problems = self.queue.list()
        for message in problems:
            if message not in self.seen_problems:  # listed once, not at every poll
                self.seen_problems.add(message)
                log.warning(message)
        at = self.clock()
        candidates = [request for request in requests if self._claimable(request, at)]
        held = [request for request in requests if request.status == "running" and request not in candidates]
        return fair_order(candidates, held)

    def claim_next(self, candidates: list[Request] | None = None) -> Request | None:
        """Claim the first of ``candidates`` (default: :meth:`claimable`) it can; None when none is won."""
        for request in self.claimable() if candidates is None else candidates:
            claimed = self.queue.update(request.id, self._claim)
            if claimed is not None and self._mine(claimed):
                return claimed
        return None

    def renew(self, request_id: str, progress: str | None = None) -> bool:
        """Extend this worker's lease; False when the request is no longer ours."""

        def extend(request: Request) -> Request | None:
            if not self._mine(request):
                return None
            return request.model_copy(update={"lease": self._lease(), "progress": progress})

        return self.queue.update(request_id, extend) is not None

    def _close(
        self,
        request_id: str,
        outcome: str,
        reason: str | None,
        results: list[Scored],
        equivalent_to: str | None = None,
    ) -> bool:
        """Record the attempt: ``finished``, ``failed`` (retried up to the cap) or ``rejected`` (final)."""

        def close(request: Request) -> Request | None:
            if not self._mine(request):
                return None
            last = request.attempts[-1].model_copy(
                update={"outcome": outcome, "ended": now(self.clock), "reason": reason}
            )
            attempts = [*request.attempts[:-1], last]
            failures = _failures(attempts)
            if outcome == "finished":
                status = "finished"
            else:
                status = "pending" if outcome == "failed" and len(failures) < max_attempts() else "failed"
            return request.model_copy(
                update={
                    "status": status,
                    "lease": None,
                    "reason": reason,
                    "progress": None,
                    "attempts": attempts,
                    "results": results,
                    "equivalent_to": equivalent_to,
                }
            )

        return self.queue.update(request_id, close) is not None

    # ---------------------------------------------------------------------------------- evaluating
    def process(self, request: Request, benchmarks: list[str]) -> Request:
        """Evaluate a claimed request on ``benchmarks`` (in one child); returns its final record.

        The child writes into a staging folder; its results reach the board (and the Hub mirror) only once
        every benchmark succeeded, no row of the same model or of equal predictions is on the board, and the
        claim is still this worker's, else they are dropped with it. An invalid stored submission, a model
        already on the board and an equivalent one are rejected for good.
        """
        request_id = request.id
        duplicate = self._duplicate(request)
        if duplicate is not None:
            self._close(request_id, "rejected", f"rejected: {duplicate}", [])
            return self.queue.get(request_id)
        renew_every = self.lease_s / 3
        last_renewal = time.monotonic()
        results: list[Scored] = []
        published: list[Path] = []
        reason, rejected, equivalent_to = None, False, None
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
                folder = self.queue.fetch_submission(request_id, Path(tmp), max_submission_bytes())
            except (OSError, ValueError) as error:
                folder, reason, rejected = None, f"rejected: the stored submission: {error}", True
            if folder is not None and not renew(f"{benchmarks[0]} (1/{len(benchmarks)})"):
                reason = "lost the claim"
            if reason is None:
                outcome = evaluate_isolated(
                    folder,
                    request.model_dump(mode="json", include={"id", "model_name", "identity"}),
                    benchmarks,
                    self.results.root,
                    staging,
                    eval_memory_bytes(),
                    eval_timeout_seconds(),
                    tick=tick,
                )
                reason, rejected = outcome.reason, outcome.rejected
                results = [
                    Scored(**summary, peak_rss_mb=outcome.peak_rss_mb) for summary in outcome.summaries or []
                ]
            # Only the claim's holder publishes (one result per request); the fresh lease covers the moves.
            if reason is None and not renew("publishing"):
                reason = "lost the claim"
            if reason is None and (duplicate := self._duplicate(request)) is not None:
                reason, rejected = f"rejected: {duplicate}", True
            if reason is None and (same := self._equivalent(staging, results)) is not None:
                equivalent_to, why = same
                reason, rejected = f"rejected: {why}", True
            if reason is None:
                try:
                    staged = [(r.result, r.sha256, r.predictions_sha256) for r in results]
                    published = self.results.move_in(staging, staged)
                except (OSError, ValueError) as error:
                    reason = f"could not publish the results: {error}"
        for path in published:  # moved onto the board: the request succeeded
            self.results.publish(path)
        outcome_name = "finished" if reason is None else "rejected" if rejected else "failed"
        # A failed attempt's scores name rows that never reached the board.
        closed = self._close(
            request_id, outcome_name, reason, results if reason is None else [], equivalent_to
        )
        if not closed:
            log.warning("request %s was taken over by another worker; dropped this attempt", request_id)
        return self.queue.get(request_id)

    def _duplicate(self, request: Request) -> str | None:
        """Why ``request`` must not be scored: a row of its weights and config is already on the board."""
        identity = request.model_identity
        if identity is None:
            return "the request does not say which model it is (no identity)"
        rows = self.results.snapshot().find(identity)
        if rows:
            row = f"the {rows[0].namespace} row {rows[0].model_name!r}"
            return f"the same weights and config are already on the board as {row}"
        return None

    def _equivalent(self, staging: Path, results: list[Scored]) -> tuple[str, str] | None:
        """``(the row's name, why)`` when a staged row's predictions equal those of a row on the board."""
        staged, board = ResultsStore(staging, repo=""), self.results.snapshot()
        for result in results:
            json_file, _ = staged.files("community", result.result.removesuffix(".json"))
            row, _ = read_row(json_file.read_bytes(), result.result)
            if row is None:
                continue
            same = equivalent_row(self.results, board, row, staged.predictions(row.key))
            if same is not None:
                return same.model_name, equivalence_reason(row, same)
        return None

    def run(
        self,
        watch: bool = False,
        limit: int | None = None,
        poll_s: float | None = None,
        stop: threading.Event | None = None,
    ) -> list[Request]:
        """Drain the queue (``watch``: then poll until ``stop`` is set); returns the processed requests.

        A watching worker outlives store errors (the Hub away, a full disk): it logs them and polls again.
        """
        poll_s = poll_seconds() if poll_s is None else poll_s
        stop = stop or threading.Event()
        processed: list[Request] = []
        warned = False
        while not stop.is_set() and (limit is None or len(processed) < limit):
            candidates, benchmarks = [], []
            try:
                candidates = self.claimable()
                # Looking for the datasets costs a load per revision: only when there is work to do.
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
) -> list[Request]:
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
