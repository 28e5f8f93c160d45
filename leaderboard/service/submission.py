"""Accepting a submission into the request store, and requeueing a failed one.

Every submission goes the same way, each step only once: the submitter's limits (:mod:`.limits`, before any
download or validation), the files (a Hub repo is downloaded only now), one validation (:mod:`.validation`:
the config once, the identity once), what scoring it needs against the evaluation's memory budget (so that
what is accepted can be scored), the name rule and the duplicate check against the queue and the board's
snapshot, then one atomic write of the files and the request (:meth:`RequestStore.add`) that checks the
limits, the name and the duplicates again on the queue as the write finds it.

The request id is the model's identity key, so the same weights and config are one request whatever their
name or file encoding; a submission identical to any request or any row (official ones included) is told
which one, and nothing is queued.
"""

from __future__ import annotations

import getpass
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from fsanet.errors import FSANetError
from fsanet.models.hub import CONFIG_NAME, download_snapshot
from fsanet.models.registry import ModelIdentity, is_repo_id
from fsanet.models.weights import WEIGHTS_NAME
from fsanet.utils.files import check_regular

from ..errors import SubmissionError
from ..settings import eval_memory_bytes, max_submission_bytes
from ..storage.names import validate_name, validate_repo_id, validate_revision
from ..storage.requests import ACTIVE, Identity, Request, RequestStore, now
from ..storage.results import BoardSnapshot, ResultsStore
from .limits import check_limits
from .validation import REFUSED_SUFFIXES, validate_submission


def cli_submitter() -> str:
    """Who submits from the command line: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def submit_directory(
    folder: str | Path,
    name: str | None = None,
    queue: RequestStore | None = None,
    results: ResultsStore | None = None,
    submitter: str | None = None,
    stated: dict[str, str | None] | None = None,
    source: str = "upload",
    revision: str | None = None,
) -> Request:
    """Validate and queue a local submission folder; returns the request, or raises SubmissionError.

    ``results`` is the board the queue feeds (default: ``LEADERBOARD_DIR``'s), checked for the same model;
    ``submitter`` whose limits apply (default: the command line's user); ``stated``: ``trained_on`` and
    ``protocol`` to record in the stored config (the Submit tab's fields) where its ``config.json`` is silent;
    ``source`` and ``revision``: where it came from (a Hub repo and the commit it was pinned to).
    """
    queue = queue or RequestStore()
    submitter = submitter or cli_submitter()
    requests = _within_limits(queue, submitter)
    return _accept(Path(folder), name, queue, results, submitter, stated, source, revision, requests)


def submit_files(
    files: Sequence[str | Path],
    name: str,
    queue: RequestStore | None = None,
    results: ResultsStore | None = None,
    submitter: str | None = None,
    stated: dict[str, str | None] | None = None,
) -> Request:
    """Queue uploaded files (the Space's upload widget): ``config.json`` and ``model.safetensors``."""
    queue = queue or RequestStore()
    submitter = submitter or cli_submitter()
    requests = _within_limits(queue, submitter)  # before the uploads are even copied
    with tempfile.TemporaryDirectory() as tmp:
        for file in files:
            target = Path(tmp) / Path(file).name  # only the base name of an upload is used
            if target.exists():
                raise SubmissionError(f"{target.name[:60]} was uploaded twice")
            shutil.copyfile(file, target)
        return _accept(Path(tmp), name, queue, results, submitter, stated, "upload", None, requests)


def submit_repo(
    repo_id: str,
    revision: str | None = None,
    name: str | None = None,
    queue: RequestStore | None = None,
    results: ResultsStore | None = None,
    submitter: str | None = None,
    stated: dict[str, str | None] | None = None,
) -> Request:
    """Validate and queue a Hub model repo at ``revision``, pinned to the commit it resolves to now; the
    submitter's limits are checked before anything is downloaded."""
    repo_id = validate_repo_id(repo_id)
    revision = validate_revision(revision) if revision else None
    queue = queue or RequestStore()
    submitter = submitter or cli_submitter()
    requests = _within_limits(queue, submitter)
    folder, sha = _download(repo_id, revision)
    return _accept(folder, name or repo_id, queue, results, submitter, stated, repo_id, sha, requests)


def submit(
    source: str | Path,
    name: str | None = None,
    revision: str | None = None,
    queue: RequestStore | None = None,
    results: ResultsStore | None = None,
    stated: dict[str, str | None] | None = None,
) -> Request:
    """The CLI's ``submit``: a local folder (the operator's own disk), else a Hub repo id."""
    folder = _local_folder(str(source))
    if folder is not None:
        return submit_directory(
            folder, name=name, queue=queue, results=results, stated=stated, source=folder.resolve().name
        )
    return submit_repo(str(source), revision, name, queue, results, stated=stated)


def _local_folder(source: str) -> Path | None:
    """The folder ``source`` names, or None for a Hub repo id; anything else is refused in one line (an empty
    source, a file, a named pipe or a device, a path to nothing)."""
    if not source.strip():
        raise SubmissionError("give a submission folder or a Hub repo id (owner/name)")
    try:
        path = check_regular(source)  # a named pipe or a device: refused by its type
        if path.is_dir():
            return path
        if path.exists():
            raise SubmissionError(
                f"{source} is a file, not a submission folder (config.json + model.safetensors)"
            )
    except OSError:  # e.g. a name too long for the file system: then it is no folder
        pass
    if is_repo_id(source.strip()):
        return None
    raise SubmissionError(f"{source}: no such folder, and not a Hub repo id (owner/name) either")


def retry_request(request_id: str, queue: RequestStore | None = None) -> Request:
    """Requeue a failed request with a fresh attempt budget (stored benchmark results are not redone)."""
    queue = queue or RequestStore()

    def requeue(request: Request) -> Request:
        if request.status != "failed":  # finished has its results; pending/running are queued already
            raise SubmissionError(
                f"request {request_id} is {request.status}: only failed requests can be retried"
            )
        retired = [attempt.model_copy(update={"retired": True}) for attempt in request.attempts]
        return request.model_copy(
            update={
                "status": "pending",
                "reason": None,
                "lease": None,
                "attempts": retired,
                "equivalent_to": None,
            }
        )

    updated = queue.update(request_id, requeue)
    if updated is None:
        raise KeyError(f"no request {request_id[:80]!r}")
    return updated


# ------------------------------------------------------------------------------------------ one submission
def _within_limits(queue: RequestStore, submitter: str) -> list[Request]:
    """The queue as it is now, after checking ``submitter``'s limits on it (nothing else done yet)."""
    with _store_errors():
        requests, _ = queue.list()
    check_limits(requests, submitter)
    return requests


def _accept(
    folder: Path,
    name: str | None,
    queue: RequestStore,
    results: ResultsStore | None,
    submitter: str,
    stated: dict[str, str | None] | None,
    source: str,
    revision: str | None,
    requests: list[Request],
) -> Request:
    info = validate_submission(folder, stated)
    budget = eval_memory_bytes()
    if budget and info.memory_bytes > budget:  # accepted means it can be scored
        raise SubmissionError(
            f"scoring this model needs about {info.memory_bytes // 2**20} MB, over the {budget // 2**20} MB "
            "evaluation budget: fewer parameters or a smaller input size"
        )
    board = (results or ResultsStore()).snapshot()
    model_name = validate_name(name or str(info.config.get("name") or ""), _taken(requests, board))
    _refuse_duplicates(info.identity, requests, board)

    def as_written(queued: list[Request]) -> None:  # again, on the queue as the write finds it
        check_limits(queued, submitter)
        validate_name(model_name, _taken(queued, board))
        _refuse_duplicates(info.identity, queued, board)

    stamp = now()
    request = Request(
        id=info.identity.key,
        identity=Identity(weights=info.identity.weights, config=info.identity.config),
        model_name=model_name,
        submitter=submitter,
        status="pending",
        created=stamp,
        updated=stamp,
        source=source,
        revision=revision,
        architecture=str(info.config["architecture"]),
        trained_on=info.config.get("trained_on"),
        protocol=info.config.get("protocol"),
        params=info.params,
        bytes=info.bytes,
    )
    files = {
        CONFIG_NAME: json.dumps(info.config, indent=2, sort_keys=True).encode(),
        WEIGHTS_NAME: (folder / WEIGHTS_NAME).read_bytes(),
    }
    with _store_errors():
        holder = queue.add(request, files, as_written)  # a failure keeps nothing
    if holder is not None and holder.model_identity == info.identity:  # an identical submission won the race
        raise SubmissionError(f"these weights and config were just submitted as request {holder.id}")
    if holder is not None:
        raise SubmissionError(
            f"request id {holder.id} is held by another model (its identity shares the first 24 hex digits): "
            "nothing was queued; change any weight and submit again"
        )
    return request


def _taken(requests: list[Request], board: BoardSnapshot) -> list[tuple[str, str]]:
    """``(name, its holder)`` of every name in use: active requests' and the board's rows'."""
    taken = [(r.model_name, f"request {r.id}") for r in requests if r.status in ACTIVE]
    return taken + [(row.model_name, "a row on the board") for row in board.rows]


def _refuse_duplicates(identity: ModelIdentity, requests: list[Request], board: BoardSnapshot) -> None:
    """The same weights and config as a request or a row (official ones included): say which."""
    for existing in requests:
        if existing.model_identity == identity:
            raise SubmissionError(
                f"these weights and config were already submitted as request {existing.id} "
                f"(model {existing.model_name!r}, {existing.status})"
            )
    for row in board.find(identity):
        raise SubmissionError(
            f"these weights and config are already on the board as the {row.namespace} row {row.model_name!r}"
        )


@contextmanager
def _store_errors() -> Iterator[None]:
    """A store that cannot be read or written (a full disk, read-only) refuses the submission in one line."""
    try:
        yield
    except OSError as error:
        raise SubmissionError(
            f"the submission could not be stored ({error.strerror or error}); try later"
        ) from None


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
