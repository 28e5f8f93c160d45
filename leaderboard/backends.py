"""Durable files behind one small interface, with two backends: a local directory and a Hub dataset repo.

Its one job is storage with a single concurrency primitive, :meth:`Backend.update`, an atomic
read-modify-write of one file that any number of processes (and, on the Hub, machines) can race on:

* :class:`LocalBackend` (``LEADERBOARD_DIR``): an exclusive lock (``flock``, released by the kernel when its
  holder dies, even by ``kill -9``) around a read and an atomic rename.
* :class:`HubBackend` (``REQUESTS_REPO``): read at the head commit, then commit with ``parent_commit`` set to
  it; the Hub refuses the commit when someone else committed in between, and the update is retried.
"""

from __future__ import annotations

import fcntl
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from fsanet.utils.files import TEMP_PREFIX, atomic_write

from .config import leaderboard_dir, requests_repo

log = logging.getLogger(__name__)

Change = Callable[[bytes | None], bytes | None]  # old content (None: absent) -> new content (None: keep)
HUB_CONFLICT_STATUSES = (409, 412)
HUB_UPDATE_TRIES = 30


class Backend(ABC):
    """Files addressed by relative POSIX paths (``requests/<id>.json``, ``submissions/<id>/config.json``)."""

    @abstractmethod
    def list(self, folder: str) -> dict[str, bytes]:
        """Every file directly in ``folder``: ``{name: content}`` (empty when the folder is absent)."""

    @abstractmethod
    def read(self, path: str) -> bytes | None:
        """A file's content, or None when it does not exist."""

    @abstractmethod
    def put(self, files: dict[str, bytes], message: str) -> None:
        """Write several files at once (on the Hub: one commit)."""

    @abstractmethod
    def update(self, path: str, change: Change, message: str) -> bytes | None:
        """Atomically replace ``path`` by ``change(old)``; returns what was written, None if nothing was."""

    def fetch(self, folder: str, into: Path) -> Path:
        """Copy ``folder``'s files into the local directory ``into`` (for a process that needs real files)."""
        into.mkdir(parents=True, exist_ok=True)
        for name, data in self.list(folder).items():
            (into / name).write_bytes(data)
        return into


class LocalBackend(Backend):
    """A directory (default ``LEADERBOARD_DIR``): atomic renames, updates under an exclusive lock."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else leaderboard_dir()

    def __repr__(self) -> str:
        return f"LocalBackend({str(self.root)!r})"

    def list(self, folder: str) -> dict[str, bytes]:
        directory = self.root / folder
        if not directory.is_dir():
            return {}
        return {
            path.name: path.read_bytes()
            for path in sorted(directory.iterdir())
            if path.is_file() and not path.name.startswith((TEMP_PREFIX, "."))
        }

    def read(self, path: str) -> bytes | None:
        file = self.root / path
        return file.read_bytes() if file.is_file() else None

    def put(self, files: dict[str, bytes], message: str) -> None:
        for path, data in files.items():
            atomic_write(self.root / path, data)

    def update(self, path: str, change: Change, message: str) -> bytes | None:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".update.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released on close, or by the kernel if this process dies
            try:
                new = change(self.read(path))
                if new is not None:
                    atomic_write(self.root / path, new)
                return new
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class HubBackend(Backend):
    """A Hub dataset repo (``REQUESTS_REPO``): every write a commit, updates guarded by ``parent_commit``."""

    def __init__(self, repo_id: str):
        from huggingface_hub import HfApi

        self.repo_id = repo_id
        self.api = HfApi()
        self._blobs: dict[
            str, tuple[str, bytes]
        ] = {}  # path -> (blob id, content): unchanged files are not re-read

    def __repr__(self) -> str:
        return f"HubBackend({self.repo_id!r})"

    def head(self) -> str:
        return self.api.dataset_info(self.repo_id, revision="main").sha

    def _download(self, path: str, revision: str, blob_id: str | None = None) -> bytes | None:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        if blob_id is not None and self._blobs.get(path, ("",))[0] == blob_id:
            return self._blobs[path][1]
        try:
            local = hf_hub_download(self.repo_id, path, repo_type="dataset", revision=revision)
        except EntryNotFoundError:
            return None
        data = Path(local).read_bytes()
        if blob_id is not None:
            self._blobs[path] = (blob_id, data)
        return data

    def list(self, folder: str) -> dict[str, bytes]:
        from huggingface_hub.errors import EntryNotFoundError

        revision = self.head()
        try:
            entries = list(
                self.api.list_repo_tree(self.repo_id, folder, repo_type="dataset", revision=revision)
            )
        except EntryNotFoundError:
            return {}
        files = {}
        for entry in entries:
            name = entry.path.removeprefix(f"{folder}/")
            if "/" in name or not hasattr(entry, "blob_id") or name.startswith("."):
                continue
            data = self._download(entry.path, revision, entry.blob_id)
            if data is not None:
                files[name] = data
        return files

    def read(self, path: str) -> bytes | None:
        return self._download(path, self.head())

    def put(self, files: dict[str, bytes], message: str) -> None:
        self._commit(files, message, parent=None)

    def update(self, path: str, change: Change, message: str) -> bytes | None:
        from huggingface_hub.errors import HfHubHTTPError

        for attempt in range(HUB_UPDATE_TRIES):
            parent = self.head()
            new = change(self._download(path, parent))
            if new is None:
                return None
            try:
                self._commit({path: new}, message, parent=parent)
                return new
            except HfHubHTTPError as error:
                status = getattr(error.response, "status_code", None)
                if status not in HUB_CONFLICT_STATUSES:
                    raise
                log.debug("%s: %s changed under us (attempt %d); re-reading", self.repo_id, path, attempt + 1)
                time.sleep(random.uniform(0.05, 0.3 * (attempt + 1)))
        raise TimeoutError(
            f"{self.repo_id}: could not update {path} ({HUB_UPDATE_TRIES} conflicting commits)"
        )

    def _commit(self, files: dict[str, bytes], message: str, parent: str | None) -> None:
        from huggingface_hub import CommitOperationAdd

        operations = [
            CommitOperationAdd(path_in_repo=path, path_or_fileobj=data) for path, data in files.items()
        ]
        self.api.create_commit(
            self.repo_id, operations, commit_message=message, repo_type="dataset", parent_commit=parent
        )


def open_backend(root: str | Path | None = None) -> Backend:
    """The configured store of requests: ``REQUESTS_REPO`` on the Hub when set, else the local directory
    ``root`` (default ``LEADERBOARD_DIR``)."""
    repo = requests_repo()
    return HubBackend(repo) if repo else LocalBackend(root)
