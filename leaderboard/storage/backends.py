"""Durable files behind one small interface, with two backends: a local directory and a Hub dataset repo.

Its one job is storage with two concurrency primitives, :meth:`Backend.update`, an atomic read-modify-write
of one file, and :meth:`Backend.create`, a folder of files and the record that points at them created
together or not at all; any number of processes (and, on the Hub, machines) can race on them:

* :class:`LocalBackend` (``LEADERBOARD_DIR``): an exclusive lock (``flock``, released by the kernel when its
  holder dies, even by ``kill -9``) around a read and an atomic rename.
* :class:`HubBackend` (``REQUESTS_REPO``): read at the head commit, then commit with ``parent_commit`` set to
  it; the Hub refuses the commit when someone else committed in between, and the update is retried.

Files above :data:`MAX_FILE_BYTES` are never read: a listing skips them and names them.
"""

from __future__ import annotations

import fcntl
import logging
import random
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fsanet.utils.files import TEMP_PREFIX, atomic_write

from ..settings import leaderboard_dir, requests_repo

log = logging.getLogger(__name__)

Change = Callable[[bytes | None], bytes | None]  # old content (None: absent) -> new content (None: keep)
HUB_CONFLICT_STATUSES = (409, 412)
HUB_UPDATE_TRIES = 30
MAX_FILE_BYTES = 1024 * 1024  # a request is ~2 kB; a bigger file in requests/ is not one (listed, never read)
Listing = tuple[dict[str, bytes], list[str]]  # {name: content}, and one message per file skipped


def _too_big(name: str, size: int) -> str:
    return f"skipped {name[:80]}: {size} bytes, over the {MAX_FILE_BYTES}-byte cap"


class Backend(ABC):
    """Files addressed by relative POSIX paths (``requests/<id>.json``, ``submissions/<id>/config.json``)."""

    @abstractmethod
    def list(self, folder: str, max_bytes: int = MAX_FILE_BYTES) -> Listing:
        """Every file directly in ``folder`` up to ``max_bytes`` (the others named, unread)."""

    @abstractmethod
    def read(self, path: str) -> bytes | None:
        """A file's content, or None when it does not exist."""

    @abstractmethod
    def update(self, path: str, change: Change, message: str) -> bytes | None:
        """Atomically replace ``path`` by ``change(old)``; returns what was written, None if nothing was."""

    @abstractmethod
    def create(
        self,
        folder: str,
        files: dict[str, bytes],
        path: str,
        data: bytes,
        message: str,
        check: Callable[[], None] = lambda: None,
    ) -> bool:
        """Write ``folder/<name>`` for each of ``files`` and then ``path``, all or nothing, unless ``path``
        exists (False then, nothing written): a failure midway leaves neither the folder nor the record.

        ``check()`` runs against the store as the write will find it (under the lock; on the Hub at the parent
        commit, again if the commit is refused) and raises to refuse it: what must be unique stays unique
        under concurrent submissions."""

    def fetch(self, folder: str, into: Path, max_bytes: int) -> Path:
        """Copy ``folder``'s files into the local directory ``into`` (for a process that needs real files)."""
        into.mkdir(parents=True, exist_ok=True)
        files, skipped = self.list(folder, max_bytes)
        if skipped:
            raise ValueError(skipped[0])
        for name, data in files.items():
            (into / name).write_bytes(data)
        return into


class LocalBackend(Backend):
    """A directory (default ``LEADERBOARD_DIR``): atomic renames, updates under an exclusive lock."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else leaderboard_dir()

    def __repr__(self) -> str:
        return f"LocalBackend({str(self.root)!r})"

    def list(self, folder: str, max_bytes: int = MAX_FILE_BYTES) -> Listing:
        directory = self.root / folder
        files: dict[str, bytes] = {}
        skipped: list[str] = []
        if not directory.is_dir():
            return files, skipped
        for path in sorted(directory.iterdir()):
            if path.name.startswith((TEMP_PREFIX, ".")) or not path.is_file():
                continue
            size = path.stat().st_size
            if size > max_bytes:
                skipped.append(_too_big(f"{folder}/{path.name}", size))
                continue
            files[path.name] = path.read_bytes()
        return files, skipped

    def read(self, path: str) -> bytes | None:
        file = self.root / path
        return file.read_bytes() if file.is_file() else None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".update.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released on close, or by the kernel if this process dies
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def update(self, path: str, change: Change, message: str) -> bytes | None:
        with self._locked():
            new = change(self.read(path))
            if new is not None:
                atomic_write(self.root / path, new)
            return new

    def create(
        self,
        folder: str,
        files: dict[str, bytes],
        path: str,
        data: bytes,
        message: str,
        check: Callable[[], None] = lambda: None,
    ) -> bool:
        target = self.root / folder
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=target.parent))  # readers skip TEMP_PREFIX
        try:
            for name, content in files.items():
                (staging / name).write_bytes(content)
            with self._locked():
                if (self.root / path).exists():
                    return False
                check()
                shutil.rmtree(target, ignore_errors=True)  # left by a crash before its record: nobody's
                staging.rename(target)
                try:
                    atomic_write(self.root / path, data)
                except BaseException:
                    shutil.rmtree(target, ignore_errors=True)
                    raise
            return True
        finally:
            shutil.rmtree(staging, ignore_errors=True)


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

    def list(self, folder: str, max_bytes: int = MAX_FILE_BYTES) -> Listing:
        from huggingface_hub.errors import EntryNotFoundError

        revision = self.head()
        files: dict[str, bytes] = {}
        skipped: list[str] = []
        try:
            entries = list(
                self.api.list_repo_tree(self.repo_id, folder, repo_type="dataset", revision=revision)
            )
        except EntryNotFoundError:
            return files, skipped
        for entry in entries:
            name = entry.path.removeprefix(f"{folder}/")
            if "/" in name or not hasattr(entry, "blob_id") or name.startswith("."):
                continue
            if (entry.size or 0) > max_bytes:
                skipped.append(_too_big(entry.path, entry.size))
                continue
            data = self._download(entry.path, revision, entry.blob_id)
            if data is not None:
                files[name] = data
        return files, skipped

    def read(self, path: str) -> bytes | None:
        return self._download(path, self.head())

    def update(self, path: str, change: Change, message: str) -> bytes | None:
        def commit(parent: str) -> dict[str, bytes] | None:
            new = change(self._download(path, parent))
            return None if new is None else {path: new}

        written = self._guarded(commit, path, message)
        return None if written is None else written[path]

    def create(
        self,
        folder: str,
        files: dict[str, bytes],
        path: str,
        data: bytes,
        message: str,
        check: Callable[[], None] = lambda: None,
    ) -> bool:
        """One commit holding the folder and the record, made only on a head where ``path`` is absent and
        ``check()`` passes (the commit's parent is that head: a concurrent commit makes it run again)."""
        everything = {f"{folder}/{name}": content for name, content in files.items()} | {path: data}

        def commit(parent: str) -> dict[str, bytes] | None:
            if self._download(path, parent) is not None:
                return None
            check()
            return everything

        return self._guarded(commit, path, message) is not None

    def _guarded(
        self, commit: Callable[[str], dict[str, bytes] | None], path: str, message: str
    ) -> dict[str, bytes] | None:
        """Commit ``commit(head)`` (None: nothing) with ``parent_commit=head``, re-reading on a conflict."""
        from huggingface_hub.errors import HfHubHTTPError

        for attempt in range(HUB_UPDATE_TRIES):
            parent = self.head()
            files = commit(parent)
            if files is None:
                return None
            try:
                self._commit(files, message, parent=parent)
                return files
            except HfHubHTTPError as error:
                status = getattr(error.response, "status_code", None)
                if status not in HUB_CONFLICT_STATUSES:
                    raise
                log.debug("%s: %s changed (attempt %d); re-reading", self.repo_id, path, attempt + 1)
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
