"""The submission requests: accepting a submission into the store, and the records' life cycle.

A request is ``requests/<id>.json`` in the store (:mod:`leaderboard.service.backends`) and its validated files
are ``submissions/<id>/{config.json, model.safetensors}``, created together or not at all, so a worker
anywhere evaluates exactly what was validated. Life cycle: ``pending -> running (lease, progress) ->
finished | failed (reason)``; every attempt is logged in ``attempts``.

The id is the model's identity key (:func:`fsanet.models.registry.identify`: weights + config), so the same
weights and config are one request whatever their name or file encoding; a submission identical to any
request or any row (official ones included) is told which one, and nothing is queued. Each submitter (the
Space's logged-in user or client address, the CLI's user) has at most ``LEADERBOARD_MAX_PENDING`` requests
waiting and ``LEADERBOARD_SUBMISSIONS_PER_HOUR`` submissions an hour (:mod:`leaderboard.submission.limits`).
"""

from __future__ import annotations

import getpass
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fsanet.errors import FSANetError
from fsanet.models.hub import CONFIG_NAME, download_snapshot
from fsanet.models.registry import ModelIdentity, validate_config
from fsanet.models.weights import WEIGHTS_NAME

from ..service.backends import Backend, open_backend
from ..service.store import ResultsStore
from ..settings import max_submission_bytes
from .limits import check_pending, take_hourly_slot
from .names import validate_name, validate_repo_id, validate_revision
from .validation import REFUSED_SUFFIXES, SubmissionError, validate_submission

STATUSES = ("pending", "running", "finished", "failed")
ACTIVE = ("pending", "running", "finished")  # requests that hold their name (a failed one has no row)
ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,80}")
_REQUIRED = {"id": str, "model_name": str, "status": str, "created": str}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def cli_submitter() -> str:
    """Who submits from the command line: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def check_request(record: Any) -> dict[str, Any]:
    """``record`` if it is a request this code wrote, else ValueError saying what is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"not a request (a JSON {type(record).__name__})")
    wrong = [key for key, kind in _REQUIRED.items() if not isinstance(record.get(key), kind)]
    if wrong:
        raise ValueError(f"not a request (missing or mistyped {wrong})")
    if record["status"] not in STATUSES or not ID_PATTERN.fullmatch(record["id"]):
        raise ValueError(f"not a request (status {str(record['status'])[:20]!r}, id {record['id'][:40]!r})")
    if not isinstance(record.get("attempts", []), list):
        raise ValueError("not a request (attempts is not a list)")
    return record


def identity_of(record: dict[str, Any]) -> ModelIdentity | None:
    """The identity a request was validated with (None for a record that does not say)."""
    identity = record.get("identity")
    if not isinstance(identity, dict):
        return None
    weights, config = identity.get("weights"), identity.get("config")
    return ModelIdentity(weights, config) if isinstance(weights, str) and isinstance(config, str) else None


def _decode(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        return check_request(json.loads(data))
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None


def _encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, indent=2, sort_keys=True).encode()


class RequestQueue:
    """The requests in a store (default: ``REQUESTS_REPO`` if set, else ``LEADERBOARD_DIR``)."""

    def __init__(self, backend: Backend | None = None):
        self.backend = backend or open_backend()

    def list(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Every request, oldest first, and one message per file in ``requests/`` that is not one."""
        files, problems = self.backend.list("requests")
        requests = []
        for name, data in files.items():
            try:
                if not name.endswith(".json"):
                    raise ValueError("not a .json file")
                record = check_request(json.loads(data))
                if f"{record['id']}.json" != name:
                    raise ValueError(f"holds request {record['id']!r}")
                requests.append(record)
            except (ValueError, RecursionError, UnicodeDecodeError) as error:
                problems.append(f"skipped requests/{name[:80]}: {str(error)[:120]}")
        return sorted(requests, key=lambda r: (r["created"], r["id"])), problems

    def get(self, request_id: str) -> dict[str, Any]:
        record = (
            _decode(self.backend.read(f"requests/{request_id}.json"))
            if ID_PATTERN.fullmatch(request_id)
            else None
        )
        if record is None:
            raise KeyError(f"no request {request_id[:80]!r}")
        return record

    def update(
        self, request_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Atomically apply ``change`` (None: leave it) to one request; returns the new record or None."""

        def apply(data: bytes | None) -> bytes | None:
            record = _decode(data)
            if record is None:
                return None
            new = change(record)
            if new is None:
                return None
            new["updated"] = now()
            return _encode(new)

        written = self.backend.update(f"requests/{request_id}.json", apply, f"request {request_id}")
        return None if written is None else json.loads(written)

    def add(
        self,
        record: dict[str, Any],
        folder: Path,
        config: dict[str, Any] | None = None,
        check: Callable[[], None] = lambda: None,
    ) -> bool:
        """Store the validated files (``config`` in place of the folder's, when given) and the request
        together; False (nothing stored) when it exists; ``check()`` may refuse it against the queue as the
        write finds it (:meth:`Backend.create`)."""
        files = {name: (folder / name).read_bytes() for name in (CONFIG_NAME, WEIGHTS_NAME)}
        if config is not None:
            files[CONFIG_NAME] = json.dumps(config, indent=2, sort_keys=True).encode()
        return self.backend.create(
            f"submissions/{record['id']}",
            files,
            f"requests/{record['id']}.json",
            _encode(record),
            f"submission {record['id']}",
            check,
        )

    def fetch_submission(self, request_id: str, into: Path) -> Path:
        return self.backend.fetch(f"submissions/{request_id}", into, max_submission_bytes())


# ------------------------------------------------------------------------------------------ submitting
def submit_directory(
    folder: str | Path,
    name: str | None = None,
    queue: RequestQueue | None = None,
    results: ResultsStore | None = None,
    submitter: str | None = None,
    stated: dict[str, str | None] | None = None,
    **origin: Any,
) -> dict[str, Any]:
    """Validate and queue a local submission folder; returns the request, or raises SubmissionError.

    ``results`` is the board the queue feeds (default: ``LEADERBOARD_DIR``'s), checked for the same model;
    ``submitter`` whose limits apply (default: the command line's user); ``stated``: ``trained_on`` and
    ``protocol`` to record in the stored config (the Submit tab's fields) where its ``config.json`` is silent.
    """
    queue = queue or RequestQueue()
    submitter = submitter or cli_submitter()
    requests, _ = queue.list()
    check_pending(requests, submitter)
    with _store_errors():
        take_hourly_slot(queue.backend, submitter)
    info = validate_submission(folder)
    config = _with_stated(info.config, stated or {})
    rows = (results or ResultsStore()).records()[0]
    model_name = validate_name(name or str(config.get("name") or ""), _taken(requests, rows))
    _refuse_duplicates(info.identity, requests, rows)

    def still_unique() -> None:  # again, as the store is when the request is written
        now_queued = queue.list()[0]
        validate_name(model_name, _taken(now_queued, rows))
        _refuse_duplicates(info.identity, now_queued, rows)

    record = {
        "id": info.identity.key,
        "identity": {"weights": info.identity.weights, "config": info.identity.config},
        "model_name": model_name,
        "submitter": submitter,
        "status": "pending",
        "created": now(),
        "updated": now(),
        "source": origin.get("source", "upload"),
        "revision": origin.get("revision"),
        "architecture": config["architecture"],
        "trained_on": config.get("trained_on"),
        "protocol": config.get("protocol"),
        "params": info.params,
        "bytes": info.bytes,
        "reason": None,
        "progress": None,
        "lease": None,
        "attempts": [],
        "results": [],
    }
    with _store_errors():
        added = queue.add(record, Path(folder), config, still_unique)  # a failure keeps nothing
    if not added:  # an identical submission won the race since the listing
        raise SubmissionError(f"these weights and config were just submitted as request {record['id']}")
    return record


def _taken(requests: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(name, its holder)`` of every name in use: active requests' and the board's rows'."""
    taken = [(r["model_name"], f"request {r['id']}") for r in requests if r["status"] in ACTIVE]
    return taken + [(r["config"]["model_name"], "a row on the board") for r in rows]


def _with_stated(config: dict[str, Any], stated: dict[str, str | None]) -> dict[str, Any]:
    """``config`` with ``stated`` (``trained_on``, ``protocol``) where it says nothing; a contradiction is
    refused. Descriptive only: the model's identity does not change."""
    wanted = {key: value for key, value in stated.items() if value}
    for key, value in wanted.items():
        if config.get(key) not in (None, value):
            raise SubmissionError(f"config.json says {key} {config[key]!r}, the form {value!r}: choose one")
    merged = {**config, **wanted}
    try:
        return validate_config(merged)
    except FSANetError as error:
        raise SubmissionError(f"{error}") from None


@contextmanager
def _store_errors() -> Iterator[None]:
    """A store that cannot be written (a full disk, read-only) refuses the submission in one line."""
    try:
        yield
    except OSError as error:
        raise SubmissionError(
            f"the submission could not be stored ({error.strerror or error}); try later"
        ) from None


def _refuse_duplicates(
    identity: ModelIdentity, requests: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> None:
    """The same weights and config as a request or a row (official ones included): say which."""
    for existing in requests:
        if identity_of(existing) == identity:
            raise SubmissionError(
                f"these weights and config were already submitted as request {existing['id']} "
                f"(model {existing['model_name']!r}, {existing['status']})"
            )
    for row in rows:
        config = row["config"]
        if (config["weights_identity"], config["config_identity"]) == (identity.weights, identity.config):
            raise SubmissionError(
                f"these weights and config are already on the board as the {config['namespace']} row "
                f"{config['model_name']!r}"
            )


def submit_files(
    files: Sequence[str | Path],
    name: str,
    queue: RequestQueue | None = None,
    results: ResultsStore | None = None,
    submitter: str | None = None,
    stated: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """Queue uploaded files (the Space's upload widget): ``config.json`` and ``model.safetensors``."""
    with tempfile.TemporaryDirectory() as tmp:
        for file in files:
            target = Path(tmp) / Path(file).name  # only the base name of an upload is used
            if target.exists():
                raise SubmissionError(f"{target.name[:60]} was uploaded twice")
            shutil.copyfile(file, target)
        return submit_directory(
            tmp, name=name, queue=queue, results=results, submitter=submitter, stated=stated
        )


def submit_repo(
    repo_id: str,
    revision: str | None = None,
    name: str | None = None,
    queue: RequestQueue | None = None,
    results: ResultsStore | None = None,
    submitter: str | None = None,
    stated: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """Validate and queue a Hub model repo at ``revision``, pinned to the commit it resolves to now."""
    repo_id = validate_repo_id(repo_id)
    revision = validate_revision(revision) if revision else None
    folder, sha = _download(repo_id, revision)
    return submit_directory(
        folder,
        name=name or repo_id,
        queue=queue,
        results=results,
        submitter=submitter,
        stated=stated,
        source=repo_id,
        revision=sha,
    )


def _download(repo_id: str, revision: str | None) -> tuple[Path, str]:
    """The repo's config and weights (after checking what it holds and their size), and the commit."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
        siblings = info.siblings or []
        refused = [s.rfilename for s in siblings if Path(s.rfilename).suffix.lower() in REFUSED_SUFFIXES]
        if refused:
            raise SubmissionError(
                f"{repo_id} holds pickle-capable files {refused[:3]}; submit safetensors only"
            )
        size = sum(s.size or 0 for s in siblings if s.rfilename in (CONFIG_NAME, WEIGHTS_NAME))
        if size > max_submission_bytes():
            raise SubmissionError(f"{repo_id}: {size} bytes is over the {max_submission_bytes()}-byte cap")
        return download_snapshot(repo_id, info.sha, [CONFIG_NAME, WEIGHTS_NAME]), str(info.sha)
    except SubmissionError:
        raise
    except (FSANetError, Exception) as error:  # noqa: BLE001  (offline, missing repo, gated: one line)
        raise SubmissionError(
            f"cannot fetch {repo_id}@{revision or 'main'} from the Hub: {type(error).__name__}"
        ) from None


def submit(
    source: str | Path,
    name: str | None = None,
    revision: str | None = None,
    queue: RequestQueue | None = None,
    results: ResultsStore | None = None,
    stated: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """The CLI's ``submit``: a local folder (the operator's own disk), else a Hub repo id."""
    try:
        is_folder = Path(source).is_dir()
    except OSError:  # e.g. a name too long for the file system: then it is no folder
        is_folder = False
    if is_folder:
        return submit_directory(
            source, name=name, queue=queue, results=results, stated=stated, source=Path(source).name
        )
    return submit_repo(str(source), revision, name, queue, results, stated=stated)


def retry_request(request_id: str, queue: RequestQueue | None = None) -> dict[str, Any]:
    """Requeue a failed request with a fresh attempt budget (stored benchmark results are not redone)."""
    queue = queue or RequestQueue()

    def requeue(record: dict[str, Any]) -> dict[str, Any]:
        if record["status"] != "failed":  # finished has its results; pending/running are queued already
            raise SubmissionError(
                f"request {request_id} is {record['status']}: only failed requests can be retried"
            )
        for attempt in record["attempts"]:
            attempt["retired"] = True
        return {**record, "status": "pending", "reason": None, "lease": None}

    updated = queue.update(request_id, requeue)
    if updated is None:
        raise KeyError(f"no request {request_id[:80]!r}")
    return updated
