"""The results store: one JSON per row, a row being what made it, in one of two namespaces.

A row is keyed by (model identity = weights + config, benchmark, dataset revision, code version), never by a
display name, which is only data in the record. Official rows (``results/official/``) are written only for
the registry's own models (``seed``, ``evaluate`` of a registry name); everything else (submissions, a local
folder, a Hub repo) is ``results/community/``. No community row can share an identity with an official one:
submissions are refused (:mod:`leaderboard.submission.requests`), ``evaluate`` answers with the existing
row, and a reader drops a community file that would shadow one. Layout under ``LEADERBOARD_DIR``::

    results/<namespace>/<identity key>__<benchmark>__<dataset revision>__v<code>.json
    predictions/<namespace>/<same stem>.parquet      per-sample predictions and errors
    .staging/<random>/{results,predictions}/...      a worker's results until its request is published

The parquet is written first and the JSON last, each atomically, so a result is visible only once complete.
Every file is validated against :mod:`leaderboard.protocol.records` when read, files above its size cap are
never read, and the board (:meth:`ResultsStore.board`) re-parses only files that changed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fsanet.models.registry import ModelIdentity
from fsanet.utils.files import TEMP_PREFIX, atomic_write, atomic_write_json, sha256_file

from ..protocol.records import MAX_RECORD_BYTES, NAMESPACES, read_record, validate_record
from ..settings import leaderboard_dir, results_repo
from ..submission.names import name_key, official_names

log = logging.getLogger(__name__)

STAGING_DIR = ".staging"
MAX_PREDICTIONS_BYTES = 64 * 1024 * 1024  # a mirrored predictions file above this is not downloaded
_WARNED: set[str] = set()


def warn_once(logger: logging.Logger, message: str) -> None:
    """Log ``message`` as a warning the first time this process meets it (every refresh meets it again)."""
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning(message)


@dataclass(frozen=True)
class ResultKey:
    """What made a row; its file name follows from it."""

    namespace: str
    identity: ModelIdentity
    benchmark: str
    dataset_revision: str
    code_version: str

    @property
    def stem(self) -> str:
        revision = self.dataset_revision.removeprefix("sha256:")[:16]
        parts = (self.identity.key, self.benchmark, revision, f"v{self.code_version}")
        return "__".join(_safe(part) for part in parts)

    @property
    def row(self) -> tuple[str, str, str, str, str]:
        """The row's identity, namespace aside: two keys with the same ``row`` are the same result."""
        return (
            self.identity.weights,
            self.identity.config,
            self.benchmark,
            self.dataset_revision,
            self.code_version,
        )


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip("-") or "_"


def key_of(record: dict[str, Any]) -> ResultKey:
    """The key of a validated record."""
    config = record["config"]
    identity = ModelIdentity(config["weights_identity"], config["config_identity"])
    return ResultKey(
        config["namespace"], identity, config["benchmark"], config["dataset_revision"], config["code_version"]
    )


@dataclass(frozen=True)
class BoardState:
    """Every usable record (official first) and one message per file skipped or field dropped."""

    records: list[dict[str, Any]]
    problems: list[str]


class ResultsStore:
    """Results and predictions in a local dir (default ``LEADERBOARD_DIR``), mirrored to ``RESULTS_REPO``."""

    def __init__(self, root: str | Path | None = None, repo: str | None = None):
        self.root = Path(root) if root is not None else leaderboard_dir()
        self.repo = repo if repo is not None else results_repo()
        self._parsed: dict[Path, tuple[tuple[int, int], dict[str, Any] | None, list[str]]] = {}
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
    def board(self) -> BoardState:
        """Every usable record, each file parsed once until it changes (the Space's refreshes reuse it)."""
        with self._lock:
            found, problems = self._listing()
            self._parsed = {path: self._parse(path, stat) for path, stat in found.items()}
            records, seen, official = [], {}, official_names()  # the registry's names, once per read
            for path, (_, record, messages) in sorted(self._parsed.items(), key=_official_first):
                problems += messages
                if record is None:
                    continue
                row = key_of(record).row
                imitated = _imitated(record, official)
                if imitated:
                    problems.append(
                        f"skipped {path.name}: the community row imitates the official {imitated!r}"
                    )
                    continue
                if row in seen:
                    problems.append(f"skipped {path.name}: the same model and data as the row {seen[row]!r}")
                    continue
                seen[row] = record["config"]["model_name"]
                records.append(record)
        for message in problems:
            warn_once(log, message)
        return BoardState(records, problems)

    def _listing(self) -> tuple[dict[Path, tuple[int, int]], list[str]]:
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

    def _parse(
        self, path: Path, stat: tuple[int, int]
    ) -> tuple[tuple[int, int], dict[str, Any] | None, list[str]]:
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == stat:
            return cached
        name = f"{path.parent.name}/{path.name}"
        if stat[0] > MAX_RECORD_BYTES:
            return stat, None, [f"skipped {name}: {stat[0]} bytes, over the {MAX_RECORD_BYTES}-byte cap"]
        try:
            record, messages = read_record(path.read_bytes(), name)
        except OSError as error:
            return stat, None, [f"skipped {name}: {error}"]
        if record is not None and record["config"]["namespace"] != path.parent.name:
            return (
                stat,
                None,
                [f"skipped {name}: its record says namespace {record['config']['namespace']!r}"],
            )
        return stat, record, messages

    def records(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Every usable result record, and one message per file skipped (or field dropped)."""
        state = self.board()
        return state.records, state.problems

    def table(self) -> pd.DataFrame:
        """The board, a row per record (:mod:`leaderboard.display.columns`), best MAE first per benchmark."""
        from ..display.columns import board_frame

        return board_frame(self.records()[0])

    def find(self, identity: ModelIdentity, benchmark: str | None = None) -> list[dict[str, Any]]:
        """The records of a model (any namespace), on ``benchmark`` or on every one."""
        return [
            record
            for record in self.records()[0]
            if key_of(record).identity == identity and benchmark in (None, record["config"]["benchmark"])
        ]

    def get(self, key: ResultKey) -> dict[str, Any] | None:
        """The stored row with ``key``'s row identity, in any namespace (official first), or None."""
        return next((r for r in self.records()[0] if key_of(r).row == key.row), None)

    def predictions(self, key: ResultKey) -> pd.DataFrame:
        return pd.read_parquet(self.paths(key)[1])

    # ------------------------------------------------------------------------------------------ writing
    def write(self, key: ResultKey, record: dict[str, Any], predictions: pd.DataFrame) -> Path:
        """Store one result: predictions first, then the JSON that makes it visible."""
        validated, dropped = validate_record(record)
        if dropped or key_of(validated) != key:
            raise ValueError(f"a result record that does not fit its schema or key: {dropped}")
        json_path, parquet_path = self.paths(key)
        atomic_write(parquet_path, predictions.to_parquet(index=False))
        atomic_write_json(json_path, record)
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

    def move_in(self, staged_root: Path, staged: list[dict[str, Any]]) -> list[Path]:
        """Move community results staged under ``staged_root`` onto the board; returns their JSON paths.

        ``staged`` holds each result's JSON name and the sha256 of its two files as the evaluation reported
        them: every file is checked before any is moved (OSError or ValueError otherwise, board untouched).
        Each move is an ``os.replace`` on one filesystem, predictions first and the JSON last, so a reader
        never sees a result without its predictions.
        """
        source = ResultsStore(staged_root, repo="")
        moves = []
        for result in staged:
            name = str(result["result"])
            if Path(name).name != name or not name.endswith(".json"):
                raise ValueError(f"not a result file name: {name[:80]!r}")
            stem = name.removesuffix(".json")
            json_file, parquet_file = source.files("community", stem)
            for file, digest in ((json_file, result["sha256"]), (parquet_file, result["predictions_sha256"])):
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


def _imitated(record: dict[str, Any], official: dict[str, str]) -> str | None:
    """The official name (of ``official``: name key -> name) a community record's display name imitates;
    None for official rows."""
    config = record["config"]
    return None if config["namespace"] == "official" else official.get(name_key(config["model_name"]))


def _official_first(item: tuple[Path, Any]) -> tuple[int, str]:
    path = item[0]
    return NAMESPACES.index(path.parent.name), path.name
