"""The submission requests: accepting a submission into the store, and the records' life cycle.

A request is ``requests/<id>.json`` in the store (:mod:`leaderboard.backends`) and its validated files are
``submissions/<id>/{config.json, model.safetensors}``, so a worker anywhere evaluates exactly what was
validated. Life cycle: ``pending -> running (lease, progress) -> finished | failed (reason)``; every attempt
is logged in ``attempts``. The id is ``<name>-<sha256(weights sha256 + config)[:12]>``: the same weights with
a changed config are a new submission; the same weights and config are told which request they already are.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fsanet.models.hub import CONFIG_NAME, WEIGHTS_NAME

from .backends import Backend, open_backend
from .config import max_submission_bytes
from .store import ResultsStore
from .validation import (
    REFUSED_SUFFIXES,
    SubmissionError,
    validate_name,
    validate_repo_id,
    validate_revision,
    validate_submission,
)

STATUSES = ("pending", "running", "finished", "failed")
ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,80}")
_REQUIRED = {"id": str, "model_name": str, "status": str, "created": str}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "model"


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
        requests, problems = [], []
        for name, data in self.backend.list("requests").items():
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

    def add(self, record: dict[str, Any], folder: Path) -> dict[str, Any]:
        """Store the validated files, then create the request unless it exists; returns the stored one."""
        files = {
            f"submissions/{record['id']}/{name}": (folder / name).read_bytes()
            for name in (CONFIG_NAME, WEIGHTS_NAME)
        }
        self.backend.put(files, f"submission {record['id']}: files")
        written = self.backend.update(
            f"requests/{record['id']}.json",
            lambda old: None if old is not None else _encode(record),
            f"submission {record['id']}",
        )
        return record if written is not None else self.get(record["id"])

    def fetch_submission(self, request_id: str, into: Path) -> Path:
        return self.backend.fetch(f"submissions/{request_id}", into)


# ------------------------------------------------------------------------------------------ submitting
def submit_directory(
    folder: str | Path,
    name: str | None = None,
    queue: RequestQueue | None = None,
    results: ResultsStore | None = None,
    **origin: Any,
) -> dict[str, Any]:
    """Validate and queue a local submission folder; returns the request, or raises SubmissionError.

    ``results`` is the board the queue feeds (default: ``LEADERBOARD_DIR``'s), checked for the same weights.
    """
    queue = queue or RequestQueue()
    info = validate_submission(folder)
    model_name = validate_name(name or str(info["config"].get("name") or ""))
    canonical = json.dumps(info["config"], sort_keys=True)
    identity = hashlib.sha256((info["weights_sha256"] + canonical).encode()).hexdigest()
    request_id = f"{_slug(model_name)}-{identity[:12]}"
    requests, _ = queue.list()
    for existing in requests:
        if existing.get("identity") == identity:
            raise SubmissionError(
                f"these weights and config were already submitted as request {existing['id']} "
                f"(model {existing['model_name']!r}, {existing['status']})"
            )
    rows = (results or ResultsStore()).records()[0]
    same = [r["config"]["model_name"] for r in rows if r["config"]["model_sha"] == info["weights_sha256"]]
    if same:
        raise SubmissionError(f"these weights are already on the board as the row {same[0]!r}")
    record = {
        "id": request_id,
        "identity": identity,
        "model_name": model_name,
        "status": "pending",
        "created": now(),
        "updated": now(),
        "source": origin.get("source", "upload"),
        "revision": origin.get("revision"),
        "architecture": info["config"]["architecture"],
        "weights_sha256": info["weights_sha256"],
        "params": info["params"],
        "bytes": info["bytes"],
        "reason": None,
        "progress": None,
        "lease": None,
        "attempts": [],
        "results": [],
    }
    return queue.add(record, Path(folder))


def submit_files(files: Sequence[str | Path], name: str, queue: RequestQueue | None = None) -> dict[str, Any]:
    """Queue uploaded files (the Space's upload widget): ``config.json`` and ``model.safetensors``."""
    with tempfile.TemporaryDirectory() as tmp:
        for file in files:
            target = Path(tmp) / Path(file).name  # only the base name of an upload is used
            if target.exists():
                raise SubmissionError(f"{target.name[:60]} was uploaded twice")
            shutil.copyfile(file, target)
        return submit_directory(tmp, name=name, queue=queue)


def submit_repo(
    repo_id: str,
    revision: str | None = None,
    name: str | None = None,
    queue: RequestQueue | None = None,
    results: ResultsStore | None = None,
) -> dict[str, Any]:
    """Validate and queue a Hub model repo at ``revision``, pinned to the commit it resolves to now."""
    repo_id = validate_repo_id(repo_id)
    revision = validate_revision(revision) if revision else None
    with tempfile.TemporaryDirectory() as tmp:
        folder, sha = _download(repo_id, revision, Path(tmp))
        return submit_directory(
            folder, name=name or repo_id, queue=queue, results=results, source=repo_id, revision=sha
        )


def _download(repo_id: str, revision: str | None, into: Path) -> tuple[Path, str]:
    from huggingface_hub import HfApi, hf_hub_download

    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
        names = [s.rfilename for s in info.siblings or []]
        refused = [n for n in names if Path(n).suffix.lower() in REFUSED_SUFFIXES]
        if refused:
            raise SubmissionError(
                f"{repo_id} holds pickle-capable files {refused[:3]}; submit safetensors only"
            )
        size = sum(s.size or 0 for s in info.siblings or [] if s.rfilename in (CONFIG_NAME, WEIGHTS_NAME))
        if size > max_submission_bytes():
            raise SubmissionError(f"{repo_id}: {size} bytes is over the {max_submission_bytes()}-byte cap")
        folder = into / "repo"
        for filename in (CONFIG_NAME, WEIGHTS_NAME):
            if filename in names:
                hf_hub_download(repo_id, filename, revision=info.sha, local_dir=folder)
        folder.mkdir(exist_ok=True)
        return folder, info.sha
    except SubmissionError:
        raise
    except Exception as error:  # noqa: BLE001  (offline, missing repo, gated, bad revision: one line)
        raise SubmissionError(
            f"cannot fetch {repo_id}@{revision or 'main'} from the Hub: {type(error).__name__}"
        ) from None


def submit(
    source: str | Path,
    name: str | None = None,
    revision: str | None = None,
    queue: RequestQueue | None = None,
    results: ResultsStore | None = None,
) -> dict[str, Any]:
    """The CLI's ``submit``: a local folder (the operator's own disk), else a Hub repo id."""
    try:
        is_folder = Path(source).is_dir()
    except OSError:  # e.g. a name too long for the file system: then it is no folder
        is_folder = False
    if is_folder:
        return submit_directory(source, name=name, queue=queue, results=results, source=Path(source).name)
    return submit_repo(str(source), revision, name, queue, results)


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
