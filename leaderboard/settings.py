"""Every environment variable of the leaderboard, read here and nowhere else (the README's table names them).

* ``LEADERBOARD_DIR``: local root of the board (default ``./leaderboard-data``; ``--results`` overrides
  it). Results live in ``results/{official,community}/``, per-sample predictions in ``predictions/``,
  submissions in ``requests/`` and ``submissions/``, default benchmark data in ``datasets/<name>``, and
  ``datasets.json`` remembers where ``prepare --out`` put a benchmark elsewhere.
* ``RESULTS_REPO``: a Hub dataset repo id the results are mirrored to (off when unset).
* ``REQUESTS_REPO``: a Hub dataset repo id holding the requests and submitted files; with ``RESULTS_REPO``
  it makes the Hub the store (any number of workers on any machines share it). Unset: ``LEADERBOARD_DIR``.
* ``LEADERBOARD_DATA_<NAME>`` (``LEADERBOARD_DATA_AFLW2000``, ``LEADERBOARD_DATA_BIWI``,
  ``LEADERBOARD_DATA_BIWI_70_30``): a local dataset directory or a Hub dataset repo id for that benchmark;
  ``LEADERBOARD_DATA_<NAME>_REVISION`` pins the Hub revision.
* ``LEADERBOARD_MAX_SUBMISSION_MB``: size cap of one submission (default 200).
* ``LEADERBOARD_MAX_PARAMS``: parameter cap of a submitted model (default 50 million).
* ``LEADERBOARD_MAX_PENDING``: requests one submitter may have waiting or running (default 3).
* ``LEADERBOARD_SUBMISSIONS_PER_HOUR``: submissions passing validation one submitter may make in an hour (10).
* ``LEADERBOARD_WORKER``: ``0`` stops the Space from running its background worker (default on).
* ``LEADERBOARD_SEED``: ``0`` stops the Space from scoring the registry's models at start (default on).
* ``LEADERBOARD_POLL_S``: how often a watching worker (and the Space's board) looks for news (default 10).
* ``LEADERBOARD_LEASE_S``: a claim's lease, renewed by its worker; expired, the request is requeued (60).
* ``LEADERBOARD_EVAL_MEMORY_MB``: address-space cap (RLIMIT_AS) of one evaluation process, and the budget a
  submission's estimated need must fit to be accepted (4096: the largest model the default caps accept
  fits; 0: none; unset on a machine with CUDA: none, as CUDA reserves far more address space than it uses).
* ``LEADERBOARD_EVAL_TIMEOUT_S``: wall-clock limit of one request's evaluation (1800).
* ``LEADERBOARD_MAX_ATTEMPTS``: failed attempts after which a request is ``failed`` for good (2).
"""

from __future__ import annotations

import os
from pathlib import Path

TRUE_WORDS_OFF = ("0", "false", "no", "off")


def leaderboard_dir(results: str | Path | None = None) -> Path:
    """The board's root: ``--results`` when given, else ``$LEADERBOARD_DIR``, else ``./leaderboard-data``.

    Every verb (``evaluate``, ``seed``, ``worker``, ``table``, ...) and the Space ask here, so results,
    requests and the datasets ``prepare`` wrote are found in the same place.
    """
    return Path(results) if results else Path(os.environ.get("LEADERBOARD_DIR", "leaderboard-data"))


def benchmark_data(variable: str) -> str | None:
    """``$LEADERBOARD_DATA_<NAME>`` (a benchmark's local dir or Hub dataset id), or None."""
    return os.environ.get(variable) or None


def results_repo() -> str | None:
    return os.environ.get("RESULTS_REPO") or None


def requests_repo() -> str | None:
    return os.environ.get("REQUESTS_REPO") or None


def _number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


def max_submission_bytes() -> int:
    return int(_number("LEADERBOARD_MAX_SUBMISSION_MB", 200) * 1024 * 1024)


def max_params() -> int:
    return int(_number("LEADERBOARD_MAX_PARAMS", 50e6))


def max_pending() -> int:
    return max(1, int(_number("LEADERBOARD_MAX_PENDING", 3)))


def submissions_per_hour() -> int:
    return max(1, int(_number("LEADERBOARD_SUBMISSIONS_PER_HOUR", 10)))


def seed_enabled() -> bool:
    return os.environ.get("LEADERBOARD_SEED", "1").strip().lower() not in TRUE_WORDS_OFF


def worker_enabled() -> bool:
    return os.environ.get("LEADERBOARD_WORKER", "1").strip().lower() not in TRUE_WORDS_OFF


def poll_seconds() -> float:
    return _number("LEADERBOARD_POLL_S", 10)


def lease_seconds() -> float:
    return _number("LEADERBOARD_LEASE_S", 60)


def eval_memory_bytes() -> int:
    if not os.environ.get("LEADERBOARD_EVAL_MEMORY_MB", "").strip():
        import torch

        if torch.cuda.is_available():  # CUDA maps tens of GB of address space: any RLIMIT_AS breaks it
            return 0
    return int(_number("LEADERBOARD_EVAL_MEMORY_MB", 4096) * 1024 * 1024)


def eval_timeout_seconds() -> float:
    return _number("LEADERBOARD_EVAL_TIMEOUT_S", 1800)


def max_attempts() -> int:
    return max(1, int(_number("LEADERBOARD_MAX_ATTEMPTS", 2)))
