"""Where the leaderboard keeps things and which benchmarks exist: configuration, not code.

Environment variables (all optional):

* ``LEADERBOARD_DIR``: local root of the board (default ``./leaderboard-data``; ``--results`` overrides
  it). Results live in ``results/``, per-sample predictions in ``predictions/``, submissions in
  ``requests/`` and ``submissions/``, default benchmark data in ``datasets/<name>``, and
  ``datasets.json`` remembers where ``prepare --out`` put a benchmark elsewhere.
* ``RESULTS_REPO``: a Hub dataset repo id the results are mirrored to (off when unset).
* ``LEADERBOARD_DATA_<NAME>`` (``LEADERBOARD_DATA_AFLW2000``, ``LEADERBOARD_DATA_BIWI``,
  ``LEADERBOARD_DATA_BIWI_70_30``): a local dataset directory or a Hub dataset repo id for that benchmark;
  ``LEADERBOARD_DATA_<NAME>_REVISION`` pins the Hub revision.
* ``LEADERBOARD_MAX_SUBMISSION_MB``: size cap of one submission (default 200).
* ``LEADERBOARD_MAX_PARAMS``: parameter cap of a submitted model (default 50 million).
* ``REQUESTS_REPO``: a Hub dataset repo id holding the requests and submitted files; with ``RESULTS_REPO``
  it makes the Hub the store (any number of workers on any machines share it). Unset: ``LEADERBOARD_DIR``.
* ``LEADERBOARD_WORKER``: ``0`` stops the Space from running its background worker (default on).
* ``LEADERBOARD_POLL_S``: how often a watching worker (and the Space's board) looks for news (default 10).
* ``LEADERBOARD_LEASE_S``: a claim's lease, renewed by its worker; expired, the request is requeued (60).
* ``LEADERBOARD_EVAL_MEMORY_MB``: address-space cap (RLIMIT_AS) of one evaluation process (2048; 0: none;
  unset on a machine with CUDA: none, as CUDA reserves far more address space than it ever uses).
* ``LEADERBOARD_EVAL_TIMEOUT_S``: wall-clock limit of one evaluation (1800).
* ``LEADERBOARD_MAX_ATTEMPTS``: failed attempts after which a request is ``failed`` for good (2).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from fsanet.utils.files import atomic_write_json

# Bump when a change alters any score (protocol, preprocessing, metric): results carry it in their key,
# so older rows stay distinguishable instead of silently mixing with new ones.
CODE_VERSION = "1"

# The official test filter: keep samples whose yaw, pitch and roll all lie in [-99, 99] degrees.
ANGLE_LIMIT = 99.0


@dataclass(frozen=True)
class Benchmark:
    """One registered benchmark: a name, its protocol and where its canonical dataset comes from."""

    name: str
    title: str
    protocol: str
    description: str
    filter_99: bool
    # FSA-Net authors' crop of this benchmark (their test databases): margin around the box, slice end.
    margin: float
    crop_end: str

    @property
    def env_var(self) -> str:
        return f"LEADERBOARD_DATA_{self.name.upper()}"

    def source(self, root: str | Path | None = None) -> str:
        """Where this benchmark's data is read from for the board at ``root`` (:func:`dataset_source`)."""
        return dataset_source(self.name, root)

    def revision(self) -> str | None:
        return os.environ.get(f"{self.env_var}_REVISION") or None


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "aflw2000",
            "AFLW2000",
            "protocol 1",
            "Trained on 300W-LP, tested on AFLW2000-3D; crop from the 2-D landmark box, margin 0.6.",
            filter_99=True,
            margin=0.6,
            crop_end="exclusive",
        ),
        Benchmark(
            "biwi",
            "BIWI",
            "protocol 1",
            "Trained on 300W-LP, tested on BIWI without tracking (MTCNN boxes, margin 0.4).",
            filter_99=True,
            margin=0.4,
            crop_end="inclusive",
        ),
        Benchmark(
            "biwi_70_30",
            "BIWI 70/30",
            "protocol 2",
            "Trained on 16 BIWI sequences, tested on the other 8 (MTCNN boxes, margin 0.4), no angle filter.",
            filter_99=False,
            margin=0.4,
            crop_end="inclusive",
        ),
    )
}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None


def leaderboard_dir(results: str | Path | None = None) -> Path:
    """The board's root: ``--results`` when given, else ``$LEADERBOARD_DIR``, else ``./leaderboard-data``.

    Every verb (``evaluate``, ``seed``, ``worker``, ``table``, ...) and the Space ask here, so results,
    requests and the datasets ``prepare`` wrote are found in the same place.
    """
    return Path(results) if results else Path(os.environ.get("LEADERBOARD_DIR", "leaderboard-data"))


def dataset_source(name: str, root: str | Path | None = None) -> str:
    """A benchmark's local dir or Hub repo id: ``LEADERBOARD_DATA_<NAME>``, else where ``prepare --out``
    last put it for this board (``<root>/datasets.json``), else ``<root>/datasets/<name>``."""
    spec = get_benchmark(name)
    if os.environ.get(spec.env_var):
        return os.environ[spec.env_var]
    board = leaderboard_dir(root)
    prepared = _prepared_locations(board).get(name)
    return prepared if prepared else str(board / "datasets" / name)


def remember_dataset(name: str, path: str | Path, root: str | Path | None = None) -> None:
    """Record where ``prepare --out`` wrote a benchmark so that ``evaluate``/``seed``/``worker`` find it."""
    board = leaderboard_dir(root)
    locations = _prepared_locations(board)
    default = (board / "datasets" / name).resolve()
    if Path(path).resolve() == default:
        locations.pop(name, None)
    else:
        locations[name] = str(Path(path).resolve())
    atomic_write_json(board / PREPARED_FILE, locations)


def looked_in(root: str | Path | None = None) -> str:
    """Where every benchmark's data was looked for, for messages that find none."""
    return "; ".join(f"{name}: {dataset_source(name, root)}" for name in BENCHMARKS)


PREPARED_FILE = "datasets.json"


def _prepared_locations(board: Path) -> dict[str, str]:
    try:
        locations = json.loads((board / PREPARED_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in locations.items() if k in BENCHMARKS and isinstance(v, str)}


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


def worker_enabled() -> bool:
    return os.environ.get("LEADERBOARD_WORKER", "1").strip().lower() not in ("0", "false", "no", "off")


def poll_seconds() -> float:
    return _number("LEADERBOARD_POLL_S", 10)


def lease_seconds() -> float:
    return _number("LEADERBOARD_LEASE_S", 60)


def eval_memory_bytes() -> int:
    if not os.environ.get("LEADERBOARD_EVAL_MEMORY_MB", "").strip():
        import torch

        if torch.cuda.is_available():  # CUDA maps tens of GB of address space: any RLIMIT_AS breaks it
            return 0
    return int(_number("LEADERBOARD_EVAL_MEMORY_MB", 2048) * 1024 * 1024)


def eval_timeout_seconds() -> float:
    return _number("LEADERBOARD_EVAL_TIMEOUT_S", 1800)


def max_attempts() -> int:
    return max(1, int(_number("LEADERBOARD_MAX_ATTEMPTS", 2)))
