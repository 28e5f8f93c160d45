"""Seed rows: the registry's shipped models (both protocols) and the fusion, on every present benchmark."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import fsanet
from fsanet.errors import FSANetError

from ..protocol.benchmarks import looked_in
from ..protocol.loading import present_benchmarks
from ..settings import seed_enabled
from ..storage.results import ResultsStore
from .evaluation import evaluate

log = logging.getLogger(__name__)


def seed_rows(
    store: ResultsStore | None = None,
    models: Sequence[str] | None = None,
    benchmarks: Sequence[str] | None = None,
    force: bool = False,
    progress: bool = False,
    robustness: bool = True,
    on_model: Callable[[int, int, str], None] | None = None,
) -> dict[str, list]:
    """Evaluate ``models`` (default: every shipped ``name.tag``, unusable ones included) on ``benchmarks``
    (default: all present) into the official namespace; ``on_model(done, total, name)`` reports progress.

    A model that cannot be loaded (e.g. the NaN-weighted 300W-LP ``fsanet_netvlad_var``, or weights whose
    mirror is not set) is reported in ``skipped`` with the reason and does not stop the others. Stored
    results are not redone unless ``force``.
    """
    store = store or ResultsStore()
    benchmarks = list(benchmarks) if benchmarks is not None else present_benchmarks(store.root)
    names = list(models) if models is not None else fsanet.pretrained_names(include_unusable=True)
    done, skipped = [], []
    for index, name in enumerate(names):
        if on_model is not None:
            on_model(index, len(names), name)
        for benchmark in benchmarks:
            try:
                evaluation = evaluate(
                    name, benchmark, store, force=force, progress=progress, robustness=robustness
                )
            except Exception as err:  # noqa: BLE001  (one model's failure, expected or not, skips that model)
                reason = str(err) if isinstance(err, FSANetError) else f"{type(err).__name__}: {err}"
                log.warning("seed: skipping %s on %s: %s", name, benchmark, reason)
                skipped.append({"model": name, "benchmark": benchmark, "reason": reason})
                continue
            done.append({"model": name, "benchmark": benchmark, "cached": evaluation.cached})
    return {"evaluated": done, "skipped": skipped, "benchmarks": benchmarks}


@dataclass
class SeedStatus:
    """Where the background seeding is: for the board's status line."""

    state: str = "idle"  # idle, seeding, done, no data, failed
    done: int = 0
    total: int = 0
    current: str = ""
    evaluated: int = 0
    skipped: list[dict] = field(default_factory=list)
    message: str = ""


_status = SeedStatus()


def seed_status() -> SeedStatus:
    return _status


def start_background_seeding(store: ResultsStore | None = None) -> threading.Thread | None:
    """Seed the registry's models into the board at ``store`` in a daemon thread (the Space does at start,
    unless ``LEADERBOARD_SEED=0``), so its first page can show a ranked board; :func:`seed_status` follows."""
    if not seed_enabled():
        return None
    store = store or ResultsStore()

    def progress(done: int, total: int, name: str) -> None:
        _status.state, _status.done, _status.total, _status.current = "seeding", done, total, name

    def work() -> None:
        benchmarks = present_benchmarks(store.root)
        if not benchmarks:
            _status.state, _status.message = "no data", looked_in(store.root)
            return
        try:
            report = seed_rows(store, benchmarks=benchmarks, on_model=progress)
        except Exception as error:  # noqa: BLE001  (the Space keeps serving; the status line says why)
            log.exception("seeding failed")
            _status.state, _status.message = "failed", f"{type(error).__name__}: {error}"
            return
        _status.evaluated, _status.skipped = len(report["evaluated"]), report["skipped"]
        _status.done, _status.state = _status.total, "done"

    thread = threading.Thread(target=work, name="leaderboard-seed", daemon=True)
    thread.start()
    return thread
