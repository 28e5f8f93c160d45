"""The results store: one JSON per (model, weights sha256, benchmark, dataset revision, code version).

Layout under ``LEADERBOARD_DIR`` (the one Hugging Face leaderboards read)::

    results/<model>__<benchmark>__<weights sha[:12]>__<dataset revision>__v<code>.json
        {"config": {"model_name": ..., "model_sha": ..., "benchmark": ..., ...},
         "results": {"<benchmark>": {"mae": ..., "mae_yaw": ..., ...}},
         "run": {"seconds": ..., "crops_per_s": ..., "device": ...}}
    predictions/<same stem>.parquet      per-sample predictions and errors
    .staging/<random>/{results,predictions}/...   a worker's results until its request is published

The parquet is written first and the JSON last, each atomically, so a result is visible only once complete.
Files the reader cannot use (corrupt, foreign, half-written temp files) are reported and skipped. A worker's
evaluations write into a staging folder of the same filesystem, moved in by :meth:`ResultsStore.move_in`
once the whole request succeeded: the board never reads ``.staging``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fsanet.utils.files import TEMP_PREFIX, atomic_write, atomic_write_json, sha256_file

from .config import leaderboard_dir, results_repo
from .model_info import method_family, provenance

log = logging.getLogger(__name__)

TABLE_COLUMNS = (
    "model",
    "benchmark",
    "protocol",
    "method",
    "trained_on",
    "model_protocol",
    "mae",
    "mae_yaw",
    "mae_pitch",
    "mae_roll",
    "geodesic_mean",
    "n",
    "n_dropped",
    "params",
    "gflops",
    "input_size",
    "weights_sha256",
    "dataset_revision",
    "code_version",
)
_REQUIRED_CONFIG = ("model_name", "model_sha", "benchmark", "dataset_revision", "code_version")
_REQUIRED_RESULTS = ("mae", "mae_yaw", "mae_pitch", "mae_roll", "n", "n_dropped")
STAGING_DIR = ".staging"


@dataclass(frozen=True)
class ResultKey:
    model: str
    weights_sha256: str
    benchmark: str
    dataset_revision: str
    code_version: str

    @property
    def stem(self) -> str:
        revision = self.dataset_revision.removeprefix("sha256:")[:16]
        parts = (self.model, self.benchmark, self.weights_sha256[:12], revision, f"v{self.code_version}")
        return "__".join(_slug(p) for p in parts)


_WARNED: set[str] = set()


def warn_once(logger: logging.Logger, message: str) -> None:
    """Log ``message`` as a warning the first time this process meets it: an unusable file is read by
    several steps of one command (records, table, plots) and would otherwise be reported by each."""
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning(message)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "_"


class ResultsStore:
    """Results and predictions in a local dir (default ``LEADERBOARD_DIR``), mirrored to ``RESULTS_REPO``."""

    def __init__(self, root: str | Path | None = None, repo: str | None = None):
        self.root = Path(root) if root is not None else leaderboard_dir()
        self.repo = repo if repo is not None else results_repo()

    @property
    def results_dir(self) -> Path:
        return self.root / "results"

    def paths(self, key: ResultKey) -> tuple[Path, Path]:
        return self.files(key.stem)

    def files(self, stem: str) -> tuple[Path, Path]:
        """The result JSON and the predictions parquet of the result named ``stem``."""
        return self.results_dir / f"{stem}.json", self.root / "predictions" / f"{stem}.parquet"

    def has(self, key: ResultKey) -> bool:
        return self.get(key) is not None

    def get(self, key: ResultKey) -> dict[str, Any] | None:
        path = self.paths(key)[0]
        if not path.exists():
            return None
        try:
            return _validated(json.loads(path.read_text()))
        except (ValueError, OSError, RecursionError) as err:  # corrupt is as good as none: it is rewritten
            warn_once(log, f"ignoring unusable result {path}: {err}")
            return None

    def write(self, key: ResultKey, record: dict[str, Any], predictions: pd.DataFrame) -> Path:
        """Store one result: predictions first, then the JSON that makes it visible."""
        _validated(record)
        json_path, parquet_path = self.paths(key)
        atomic_write(parquet_path, predictions.to_parquet(index=False))
        atomic_write_json(json_path, record)
        self.publish(json_path)
        return json_path

    def publish(self, json_path: Path) -> None:
        """Mirror one stored result (its JSON and predictions) to ``RESULTS_REPO`` when one is set."""
        if self.repo:
            self._upload(*self.files(json_path.stem))

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
        """Move results staged under ``staged_root`` onto the board; returns their JSON paths.

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
            json_file, parquet_file = source.files(stem)
            for file, digest in ((json_file, result["sha256"]), (parquet_file, result["predictions_sha256"])):
                if sha256_file(file) != digest:
                    raise ValueError(f"{file.name} changed after its evaluation wrote it")
            moves.append((stem, parquet_file, json_file))
        moved = []
        for stem, parquet_file, json_file in moves:
            json_target, parquet_target = self.files(stem)
            for target in (json_target, parquet_target):
                target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(parquet_file, parquet_target)
            os.replace(json_file, json_target)
            moved.append(json_target)
        return moved

    def predictions(self, key: ResultKey) -> pd.DataFrame:
        return pd.read_parquet(self.paths(key)[1])

    def records(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Every usable result record, and one message per file that was skipped."""
        records, problems = [], []
        if not self.results_dir.is_dir():
            return records, problems
        for path in sorted(self.results_dir.glob("*.json")):
            if path.name.startswith(TEMP_PREFIX):
                continue
            try:
                records.append(_validated(json.loads(path.read_text())))
            except (ValueError, OSError, UnicodeDecodeError, RecursionError) as err:
                problems.append(f"skipped {path.name}: {err}")
        for message in problems:
            warn_once(log, message)
        return records, problems

    def table(self) -> pd.DataFrame:
        """The board, one row per stored result, best MAE first within each benchmark."""
        rows = []
        for record in self.records()[0]:
            config = record["config"]
            scores = record["results"][config["benchmark"]]
            # Results stored before models stated their training data: read it off the registry tag.
            trained_on, model_protocol = config.get("trained_on"), config.get("model_protocol")
            if not (trained_on and model_protocol):
                trained_on, model_protocol = provenance({}, config["model_name"])
            rows.append(
                {
                    "model": config["model_name"],
                    "method": config.get("method") or method_family(config),
                    "trained_on": trained_on,
                    "model_protocol": model_protocol,
                    "benchmark": config["benchmark"],
                    "protocol": config.get("protocol", ""),
                    **{k: scores.get(k) for k in TABLE_COLUMNS if k in scores},
                    "params": config.get("params"),  # model size (parameter count)
                    "gflops": config.get("gflops"),
                    "input_size": config.get("input_size"),
                    "weights_sha256": config["model_sha"],
                    "dataset_revision": config["dataset_revision"],
                    "code_version": config["code_version"],
                }
            )
        frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
        return frame.sort_values(["benchmark", "mae", "model"], ignore_index=True)

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
        """Download the results mirrored in ``RESULTS_REPO`` into the local directory."""
        from huggingface_hub import snapshot_download

        if not self.repo:
            raise ValueError("no RESULTS_REPO configured")
        snapshot_download(
            self.repo, repo_type="dataset", local_dir=self.root, allow_patterns=["results/*", "predictions/*"]
        )
        return self.root


def _validated(record: Any) -> dict[str, Any]:
    """``record`` if it is a leaderboard result, else ValueError saying what is wrong."""
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ValueError("not a leaderboard result (no 'config' object)")
    config = record["config"]
    missing = [k for k in _REQUIRED_CONFIG if not isinstance(config.get(k), str)]
    if missing:
        raise ValueError(f"config lacks {missing}")
    scores = (
        record.get("results", {}).get(config["benchmark"])
        if isinstance(record.get("results"), dict)
        else None
    )
    if not isinstance(scores, dict):
        raise ValueError(f"no results for benchmark {config['benchmark']!r}")
    bad = [
        k
        for k in _REQUIRED_RESULTS
        if not isinstance(scores.get(k), int | float)
        or isinstance(scores[k], bool)
        or not math.isfinite(scores[k])  # NaN/inf would break ranking for every row
    ]
    if bad:
        raise ValueError(f"results lack finite numbers for {bad}")
    return record


def format_table(frame: pd.DataFrame, fmt: str = "markdown") -> str:
    """The board as ``csv``, ``json`` (records) or ``markdown``."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", indent=2)
    if fmt == "markdown":
        return _markdown(frame)
    raise ValueError(f"unknown format {fmt!r} (csv, json, markdown)")


def _markdown(frame: pd.DataFrame) -> str:
    # Hand-rolled: pandas.to_markdown needs the optional 'tabulate' package.
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        text = str(value)
        return text[:12] if len(text) == 64 and re.fullmatch(r"[0-9a-f]+", text) else text.replace("|", "\\|")

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
