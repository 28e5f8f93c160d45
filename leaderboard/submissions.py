"""Submissions of new variant weights, a requests store, and the worker that evaluates them.

A submission is ``config.json`` + ``model.safetensors`` (a directory, uploaded files, or a Hub repo id at a
revision). It is validated before it is queued: no pickle-capable files, a size cap, a known architecture,
every tensor name and shape matching it (``fsanet.validate_state_dict``). Accepted files are copied to
``LEADERBOARD_DIR/submissions/<id>/`` so the evaluation uses exactly what was validated.

Requests live in ``LEADERBOARD_DIR/requests/<id>.json`` and move ``pending -> running -> finished``
or ``failed`` (with the reason). Results are written atomically by the runner, so a worker killed
mid-evaluation leaves no half result; its request stays ``running`` with a dead pid and the next worker
puts it back to ``pending`` (or :func:`retry_request` does), and already stored benchmarks are not redone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsanet
from fsanet.errors import FSANetError
from fsanet.models.hub import CONFIG_NAME, WEIGHTS_NAME, load_config_file, load_directory, load_weights_file
from fsanet.utils.files import TEMP_PREFIX, atomic_write_json, sha256_file

from .config import BENCHMARKS, leaderboard_dir, looked_in, max_submission_bytes
from .data import DatasetUnavailableError
from .runner import evaluate
from .store import ResultsStore, _slug, warn_once

log = logging.getLogger(__name__)

ALLOWED_EXTRA_FILES = {"README.md", ".gitattributes"}
# Formats that can carry pickled code (or that we simply do not load): refused by name, never opened.
REFUSED_SUFFIXES = {
    ".bin",
    ".pt",
    ".pth",
    ".pkl",
    ".pickle",
    ".ckpt",
    ".h5",
    ".hdf5",
    ".npy",
    ".npz",
    ".joblib",
}
STATUSES = ("pending", "running", "finished", "failed")


class SubmissionError(FSANetError):
    """A submission was rejected; the message says why."""


def validate_submission(directory: str | Path) -> dict[str, Any]:
    """Check a submission folder: ``{"config", "weights_sha256", "bytes"}``, or SubmissionError."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SubmissionError(f"{directory} is not a directory")
    files = [
        p for p in directory.rglob("*") if p.is_file() and ".cache" not in p.relative_to(directory).parts
    ]
    for path in files:
        name = path.relative_to(directory).as_posix()
        if path.suffix.lower() in REFUSED_SUFFIXES:
            raise SubmissionError(
                f"{name}: pickle-capable weight files are not accepted; submit model.safetensors"
            )
        if name not in (CONFIG_NAME, WEIGHTS_NAME, *ALLOWED_EXTRA_FILES):
            raise SubmissionError(f"{name}: unexpected file (a submission is {CONFIG_NAME} + {WEIGHTS_NAME})")
    for required in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / required).is_file():
            raise SubmissionError(f"missing {required}")
    size = sum(p.stat().st_size for p in files)
    if size > max_submission_bytes():
        raise SubmissionError(f"{size} bytes is over the {max_submission_bytes()}-byte submission cap")
    try:
        config = load_config_file(directory / CONFIG_NAME)
        fsanet.validate_state_dict(config, load_weights_file(directory / WEIGHTS_NAME))
    except FSANetError as err:
        raise SubmissionError(str(err)) from err
    return {"config": config, "weights_sha256": sha256_file(directory / WEIGHTS_NAME), "bytes": size}


class RequestsStore:
    """One JSON per request in ``<root>/requests``; every update is an atomic rewrite."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else leaderboard_dir()

    @property
    def requests_dir(self) -> Path:
        return self.root / "requests"

    def submission_dir(self, request_id: str) -> Path:
        return self.root / "submissions" / request_id

    def get(self, request_id: str) -> dict[str, Any]:
        path = self.requests_dir / f"{request_id}.json"
        if not path.exists():
            raise KeyError(f"no request {request_id!r}")
        return json.loads(path.read_text())

    def list(self, status: str | None = None) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.requests_dir.glob("*.json")) if self.requests_dir.is_dir() else []:
            if path.name.startswith(TEMP_PREFIX):
                continue
            try:
                request = json.loads(path.read_text())
                if request.get("status") in STATUSES:
                    out.append(request)
            except (ValueError, OSError) as err:
                warn_once(log, f"skipped request file {path.name}: {err}")
        out = [r for r in out if status is None or r["status"] == status]
        return sorted(out, key=lambda r: (r.get("created", ""), r["id"]))

    def save(self, request: dict[str, Any]) -> dict[str, Any]:
        request["updated"] = _now()
        atomic_write_json(self.requests_dir / f"{request['id']}.json", request)
        return request

    def set_status(self, request_id: str, status: str, **fields: Any) -> dict[str, Any]:
        request = self.get(request_id)
        request.update(status=status, **fields)
        return self.save(request)

    def recover_stale(self) -> list[str]:
        """Put back to ``pending`` the ``running`` requests whose worker (on this host) is gone."""
        recovered = []
        for request in self.list("running"):
            worker = request.get("worker") or {}
            if worker.get("host") == socket.gethostname() and not _alive(worker.get("pid")):
                self.set_status(request["id"], "pending", worker=None, note="worker died; requeued")
                recovered.append(request["id"])
        return recovered


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def submit(
    source: str | Path,
    name: str | None = None,
    revision: str | None = None,
    root: str | Path | None = None,
    submitter: str | None = None,
) -> dict[str, Any]:
    """Validate and queue a submission (a directory, or a Hub model repo id at ``revision``).

    Returns the request (``id``, ``status`` ...). Raises :class:`SubmissionError` with the reason if rejected.
    Submitting the same weights under the same name again returns the existing request (a failed one is
    requeued).
    """
    requests = RequestsStore(root)
    with tempfile.TemporaryDirectory() as tmp:
        if Path(source).is_dir():
            folder, origin, pinned = Path(source), str(Path(source).name), None
        else:
            folder, pinned = _download(str(source), revision, Path(tmp)), revision
            origin = str(source)
        info = validate_submission(folder)
        model_name = name or info["config"].get("name") or origin
        request_id = f"{_slug(model_name)}-{info['weights_sha256'][:12]}"
        try:
            existing = requests.get(request_id)
        except KeyError:
            existing = None
        if existing is not None and existing["status"] != "failed":
            return existing
        _copy_validated(folder, requests.submission_dir(request_id))
    request = {
        "id": request_id,
        "model_name": model_name,
        "status": "pending",
        "created": _now(),
        "source": origin,
        "revision": pinned,
        "submitter": submitter,
        "architecture": info["config"]["architecture"],
        "weights_sha256": info["weights_sha256"],
        "bytes": info["bytes"],
        "reason": None,
        "results": [],
    }
    return requests.save(request)


def submit_files(files: Sequence[str | Path], name: str, root: str | Path | None = None) -> dict[str, Any]:
    """Queue uploaded files (the Space's upload widget): ``config.json`` and ``model.safetensors``."""
    with tempfile.TemporaryDirectory() as tmp:
        for file in files:
            shutil.copyfile(file, Path(tmp) / Path(file).name)
        return submit(tmp, name=name, root=root)


def _download(repo_id: str, revision: str | None, into: Path) -> Path:
    from huggingface_hub import HfApi, snapshot_download

    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
        names = [s.rfilename for s in info.siblings or []]
        refused = [n for n in names if Path(n).suffix.lower() in REFUSED_SUFFIXES]
        if refused:
            raise SubmissionError(
                f"{repo_id} holds pickle-capable files {refused[:3]}; submit safetensors only"
            )
        size = sum(s.size or 0 for s in info.siblings or [])
        if size > max_submission_bytes():
            raise SubmissionError(f"{repo_id}: {size} bytes is over the {max_submission_bytes()}-byte cap")
        return Path(
            snapshot_download(
                repo_id,
                revision=info.sha,
                allow_patterns=[CONFIG_NAME, WEIGHTS_NAME],
                local_dir=into / "repo",
            )
        )
    except SubmissionError:
        raise
    except Exception as err:  # offline, missing repo, gated, bad revision
        raise SubmissionError(f"cannot fetch {repo_id}@{revision or 'main'} from the Hub: {err}") from err


def _copy_validated(folder: Path, target: Path) -> None:
    staging = target.parent / f"{TEMP_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    for filename in (CONFIG_NAME, WEIGHTS_NAME):
        shutil.copyfile(folder / filename, staging / filename)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def retry_request(request_id: str, root: str | Path | None = None) -> dict[str, Any]:
    """Requeue a failed request (already stored benchmark results are kept and not redone).

    Only failed ones: a finished request has its results, and a pending or running one is queued already
    (one left running by a dead worker is requeued by the next worker).
    """
    requests = RequestsStore(root)
    status = requests.get(request_id)["status"]
    if status != "failed":
        raise SubmissionError(f"request {request_id} is {status}: only failed requests can be retried")
    return requests.set_status(request_id, "pending", reason=None, worker=None)


def request_status(request_id: str | None = None, root: str | Path | None = None) -> list[dict[str, Any]]:
    """One request (by id) or all of them, oldest first."""
    requests = RequestsStore(root)
    return [requests.get(request_id)] if request_id else requests.list()


def present_benchmarks(root: str | Path | None = None) -> list[str]:
    """The registered benchmarks whose data, located for the board at ``root``, can be loaded now."""
    from .data import load_benchmark_data

    present = []
    for spec in BENCHMARKS.values():
        try:
            load_benchmark_data(spec.source(root), spec.revision())
        except DatasetUnavailableError:
            continue
        present.append(spec.name)
    return present


def run_worker(
    root: str | Path | None = None,
    store: ResultsStore | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Evaluate pending requests (oldest first) on every present benchmark; returns the processed requests."""
    requests = RequestsStore(root)
    store = store or ResultsStore(requests.root)
    for request_id in requests.recover_stale():
        log.warning("request %s was running under a dead worker: requeued", request_id)
    benchmarks = present_benchmarks(requests.root)
    processed = []
    for request in requests.list("pending")[:limit]:
        if not benchmarks:
            log.warning(
                "no benchmark data (looked in %s): %s stays pending", looked_in(requests.root), request["id"]
            )
            break
        worker = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
        requests.set_status(request["id"], "running", worker=worker)
        try:
            model = load_directory(requests.submission_dir(request["id"]))
            model.name = request["model_name"]
            results = []
            for benchmark in benchmarks:
                evaluation = evaluate(model, benchmark, store, progress=progress)
                scores = evaluation.record["results"][benchmark]
                results.append({"benchmark": benchmark, "mae": scores["mae"], "result": evaluation.path.name})
        except (FSANetError, ValueError, OSError) as err:
            processed.append(requests.set_status(request["id"], "failed", reason=str(err), worker=None))
            continue
        processed.append(requests.set_status(request["id"], "finished", results=results, worker=None))
    return processed
