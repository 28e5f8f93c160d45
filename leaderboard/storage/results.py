"""The results store: one JSON per measured row, keyed by what made it, in one of two namespaces; and the
board snapshot every view, plot and download is made from.

A row is keyed by (model identity = weights + config, benchmark, dataset revision, code version), never by a
display name, which is only data in the row. Official rows (``results/official/``) are written only for the
registry's own models; everything else (submissions, a local folder, a Hub repo) is ``results/community/``.
No community row can share an identity with an official one, and a reader drops a community file that would
shadow one. Layout under ``LEADERBOARD_DIR``::

    results/<namespace>/<weights identity>-<config identity>__<benchmark>__<dataset revision>__v<code>.json
    predictions/<namespace>/<same stem>.parquet      per-sample predictions and errors
    .staging/<random>/{results,predictions}/...      a worker's results until its request is published

File names carry the full model identity, and a write never replaces a file holding another row. The parquet
is written first and the JSON last, each atomically, so a result is visible only once complete.

:meth:`ResultsStore.snapshot` is the one read of the board: it lists the files (names, sizes, times) and,
when nothing changed since the last read, returns the same :class:`BoardSnapshot`; otherwise it parses the
files that changed (each validated once into a :class:`~.rows.MeasuredRow`) and makes a new one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from fsanet.models.registry import ModelIdentity
from fsanet.utils.files import TEMP_PREFIX, atomic_write, atomic_write_json, sha256_file

from ..settings import leaderboard_dir, results_repo
from .names import name_key, official_names
from .rows import MAX_RECORD_BYTES, NAMESPACES, MeasuredRow, ResultKey, read_row

log = logging.getLogger(__name__)

STAGING_DIR = ".staging"
MAX_PREDICTIONS_BYTES = 64 * 1024 * 1024  # a mirrored predictions file above this is not downloaded
_WARNED: set[str] = set()
Derived = TypeVar("Derived")
Stamp = tuple[int, int]  # a file's size and modification time: it changed when these did


def warn_once(logger: logging.Logger, message: str) -> None:
    """Log ``message`` as a warning the first time this process meets it (every refresh meets it again)."""
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning(message)


@dataclass(frozen=True, eq=False)
class BoardSnapshot:
    """The board as one read of the store found it: every usable row (official first), one message per file
    skipped or field dropped, and ``version``, which changes exactly when the store's files do.

    Views, plots and downloads are made from it; what they derive from it (the results table, say) is made
    once per snapshot with :meth:`derived`.
    """

    rows: tuple[MeasuredRow, ...]
    problems: tuple[str, ...]
    version: str
    _derived: dict[Callable[..., Any], Any] = field(default_factory=dict, repr=False)
    # Reentrant: a derived value may be made from others (the table with reported rows from the table).
    _deriving: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def derived(self, make: Callable[[BoardSnapshot], Derived]) -> Derived:
        """``make(self)``, computed once for this snapshot (callers must not modify what it returns)."""
        with self._deriving:
            if make not in self._derived:
                self._derived[make] = make(self)
            return self._derived[make]

    def find(self, identity: ModelIdentity, benchmark: str | None = None) -> list[MeasuredRow]:
        """The rows of a model (any namespace), on ``benchmark`` or on every one."""
        return [r for r in self.rows if r.identity == identity and benchmark in (None, r.benchmark)]

    def get(self, key: ResultKey) -> MeasuredRow | None:
        """The row with ``key``'s row identity, in any namespace (official first), or None."""
        return next((r for r in self.rows if r.key.row == key.row), None)

    def on(self, benchmark: str, dataset_revision: str | None = None) -> list[MeasuredRow]:
        """The rows on ``benchmark`` (and that dataset revision, when given)."""
        return [
            r
            for r in self.rows
            if r.benchmark == benchmark and dataset_revision in (None, r.dataset_revision)
        ]


class ResultsStore:
    """Results and predictions in a local dir (default ``LEADERBOARD_DIR``), mirrored to ``RESULTS_REPO``."""

    def __init__(self, root: str | Path | None = None, repo: str | None = None):
        self.root = Path(root) if root is not None else leaderboard_dir()
        self.repo = repo if repo is not None else results_repo()
        self._parsed: dict[Path, tuple[Stamp, MeasuredRow | None, list[str]]] = {}
        self._snapshot: BoardSnapshot | None = None
        self._lock = threading.Lock()

    @property
    def results_dir(self) -> Path:
        return self.root / "results"

    def files(self, namespace: str, stem: str) -> tuple[Path, Path]:
        """The result JSON and the predictions parquet of the result ``namespace/stem``."""
        if namespace not in NAMESPACES:
            raise ValueError(f"unknown namespace {namespace[:20]!r}")
        return (
            self.results_dir / namespace / f"{stem}.json",
            self.root / "predictions" / namespace / f"{stem}.parquet",
        )

    def paths(self, key: ResultKey) -> tuple[Path, Path]:
        return self.files(key.namespace, key.stem)

    # ------------------------------------------------------------------------------------------ reading
    def snapshot(self) -> BoardSnapshot:
        """The board now: the last read's snapshot when no file changed since (see the module doc)."""
        with self._lock:
            found, problems = self._listing()
            version = hashlib.sha256(repr(sorted((str(p), s) for p, s in found.items())).encode()).hexdigest()
            if self._snapshot is not None and self._snapshot.version == version:
                return self._snapshot
            self._parsed = {path: self._parse(path, stamp) for path, stamp in found.items()}
            rows, seen, official = [], {}, official_names()  # the registry's names, once per change
            for path, (_, row, messages) in sorted(self._parsed.items(), key=_official_first):
                problems += messages
                if row is None:
                    continue
                imitated = official.get(name_key(row.model_name)) if row.namespace == "community" else None
                if imitated:
                    problems.append(
                        f"skipped {path.name}: the community row imitates the official {imitated!r}"
                    )
                    continue
                if row.key.row in seen:
                    problems.append(
                        f"skipped {path.name}: the same model and data as the row {seen[row.key.row]!r}"
                    )
                    continue
                seen[row.key.row] = row.model_name
                rows.append(row)
            self._snapshot = BoardSnapshot(tuple(rows), tuple(problems), version)
        for message in problems:
            warn_once(log, message)
        return self._snapshot

    def _listing(self) -> tuple[dict[Path, Stamp], list[str]]:
        found, problems = {}, []
        if not self.results_dir.is_dir():
            return found, problems
        for path in sorted(self.results_dir.glob("*.json")):
            problems.append(
                f"skipped {path.name}: not in results/official or results/community (an older layout)"
            )
        for namespace in NAMESPACES:
            for path in sorted((self.results_dir / namespace).glob("*.json")):
                if path.name.startswith(TEMP_PREFIX):
                    continue
                try:
                    stat = path.stat()
                except OSError:  # removed between the listing and now
                    continue
                found[path] = (stat.st_size, stat.st_mtime_ns)
        return found, problems

    def _parse(self, path: Path, stamp: Stamp) -> tuple[Stamp, MeasuredRow | None, list[str]]:
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == stamp:
            return cached
        name = f"{path.parent.name}/{path.name}"
        if stamp[0] > MAX_RECORD_BYTES:
            return stamp, None, [f"skipped {name}: {stamp[0]} bytes, over the {MAX_RECORD_BYTES}-byte cap"]
        try:
            row, messages = read_row(path.read_bytes(), name)
        except OSError as error:
            return stamp, None, [f"skipped {name}: {error}"]
        if row is not None and row.namespace != path.parent.name:
            return stamp, None, [f"skipped {name}: its row says namespace {row.namespace!r}"]
        return stamp, row, messages

    def predictions(self, key: ResultKey) -> pd.DataFrame:
        return pd.read_parquet(self.paths(key)[1])

    # ------------------------------------------------------------------------------------------ writing
    def write(self, row: MeasuredRow, predictions: pd.DataFrame) -> Path:
        """Store one row: predictions first, then the JSON that makes it visible. A file of that name holding
        another row (a name is the full identity: only by hand) is refused, never replaced."""
        json_path, parquet_path = self.paths(row.key)
        if json_path.is_file():
            held, _ = read_row(json_path.read_bytes(), json_path.name)
            if held is not None and held.key.row != row.key.row:
                raise ValueError(f"{json_path.name} holds another row ({held.model_name!r}): not replaced")
        atomic_write(parquet_path, predictions.to_parquet(index=False))
        atomic_write_json(json_path, row.to_record())
        self.publish(json_path)
        return json_path

    def publish(self, json_path: Path) -> None:
        """Mirror one stored result (its JSON and predictions) to ``RESULTS_REPO`` when one is set."""
        if self.repo:
            self._upload(*self.files(json_path.parent.name, json_path.stem))

    @contextmanager
    def staging(self, stale_after_s: float) -> Iterator[Path]:
        """A fresh private folder under ``<root>/.staging/``, removed on exit; staging folders untouched for
        ``stale_after_s`` (left by a killed worker; a live one touches its own) are removed first."""
        parent = self.root / STAGING_DIR
        parent.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - stale_after_s
        for stale in parent.iterdir():
            try:
                if stale.stat().st_mtime < cutoff:
                    shutil.rmtree(stale)
            except OSError:  # another worker removed it first
                continue
        folder = Path(tempfile.mkdtemp(prefix="staged-", dir=parent))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def move_in(self, staged_root: Path, staged: list[tuple[str, str, str]]) -> list[Path]:
        """Move community results staged under ``staged_root`` onto the board; returns their JSON paths.

        ``staged`` holds each result's JSON name and the sha256 of its JSON and predictions as the evaluation
        reported them: every file is checked before any is moved (OSError or ValueError otherwise, board
        untouched). Each move is an ``os.replace`` on one filesystem, predictions first and the JSON last, so
        a reader never sees a result without its predictions.
        """
        source = ResultsStore(staged_root, repo="")
        moves = []
        for name, json_digest, predictions_digest in staged:
            if Path(name).name != name or not name.endswith(".json"):
                raise ValueError(f"not a result file name: {name[:80]!r}")
            stem = name.removesuffix(".json")
            json_file, parquet_file = source.files("community", stem)
            for file, digest in ((json_file, json_digest), (parquet_file, predictions_digest)):
                if sha256_file(file) != digest:
                    raise ValueError(f"{file.name} changed after its evaluation wrote it")
            moves.append((stem, parquet_file, json_file))
        moved = []
        for stem, parquet_file, json_file in moves:
            json_target, parquet_target = self.files("community", stem)
            for target in (json_target, parquet_target):
                target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(parquet_file, parquet_target)
            os.replace(json_file, json_target)
            moved.append(json_target)
        return moved

    # -------------------------------------------------------------------------------------- the Hub mirror
    def _upload(self, *paths: Path) -> None:
        from huggingface_hub import HfApi

        try:
            api = HfApi()
            for path in paths:
                api.upload_file(
                    path_or_fileobj=str(path),
                    path_in_repo=path.relative_to(self.root).as_posix(),
                    repo_id=self.repo,
                    repo_type="dataset",
                )
        except Exception as err:  # the local copy is the record; a failed mirror must not lose it
            log.warning("could not sync %s to %s: %s (kept locally)", paths[0].name, self.repo, err)

    def pull(self) -> Path:
        """Download the results mirrored in ``RESULTS_REPO`` (files within the caps) into the local dir."""
        from huggingface_hub import HfApi, snapshot_download

        if not self.repo:
            raise ValueError("no RESULTS_REPO configured")
        entries = HfApi().list_repo_tree(self.repo, repo_type="dataset", recursive=True)
        wanted, problems = [], []
        for entry in entries:
            path, size = entry.path, getattr(entry, "size", None)
            cap = MAX_RECORD_BYTES if path.startswith("results/") else MAX_PREDICTIONS_BYTES
            if not path.startswith(("results/", "predictions/")) or size is None:
                continue
            if size > cap:
                problems.append(f"skipped {path}: {size} bytes, over the {cap}-byte cap")
                continue
            wanted.append(path)
        for message in problems:
            warn_once(log, message)
        if wanted:
            snapshot_download(self.repo, repo_type="dataset", local_dir=self.root, allow_patterns=wanted)
        return self.root


def _official_first(item: tuple[Path, Any]) -> tuple[int, str]:
    path = item[0]
    return NAMESPACES.index(path.parent.name), path.name
